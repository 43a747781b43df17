# A pipeline image: the target's runtime with one pipeline's server bundle (the same server/ folder
# `nox -s assemble` writes) baked in at /opt/hps/server, owned by root and read-only to the serving
# user. Copy-only, so a code or config change rebuilds in seconds and still bit for bit. The
# context holds opt/hps/server/...: copied onto the existing /opt, every directory keeps the
# context's (epoch) times.
FROM runtime
COPY opt/ /opt/
ENV HPS_SERVER_ROOT=/opt/hps/server
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/hps/server/server.sh"]
CMD []
