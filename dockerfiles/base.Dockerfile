# The base: a Debian rootfs that hpsforge built with mmdebstrap from lock/debian.lock.json.
# BuildKit owns the image from the first layer; nothing is pulled.
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/bin/bash"]
