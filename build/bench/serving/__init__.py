"""`nox -s bench -- cpu --serving [PIPELINES]`: how each pipeline serves, beside the same work with
no server and behind the naive stack, on the same cores and in one run.

Per pipeline, for its golden request and a larger one (`[bench]` in goldens/cases.toml): in-process
(the bundle's model.py work called directly, bench/inprocess.py), Triton (the pipeline image over
HTTP and gRPC, bench/loadgen.py, with its stage timings and Triton's statistics) and Flask +
gunicorn (bench/flask_app.py). Every server first answers every golden case (checked), and every
measured answer must be an errorCode 0 envelope. Printed, never asserted.

    build.py    the bench images (runtime + bench-only tools + the pipeline's bundle)
    measure.py  containers, load generation, the in-process/Triton/Flask measurements, `run`
    report.py   the report's models, the summary and table, serving.json, the plot
"""
