"""The errors a pipeline raises; the runtime maps them to the envelope's errorCode."""


class RequestError(Exception):
    """The request is well-formed JSON but cannot be served as asked: errorCode 422.

    The message is shown to the client as is, so it must say what was wrong.
    """

    code = 422
