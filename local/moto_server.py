"""moto's server, with DynamoDB requests applied one at a time.

DynamoDB evaluates a write's condition and applies it atomically: of fifty concurrent
conditional puts of one item, exactly one succeeds. moto 5.2.5 serves requests on many
threads and checks a condition and applies the write as separate steps, so two racing
transactions can both pass `attribute_not_exists` (seen with aloft's concurrent-create
test: two users with one email). Serialising DynamoDB requests restores the guarantee
the product relies on without changing a byte of what the SDK sends or receives. Other
services (SQS long polls in particular) stay concurrent.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_dynamodb = threading.Lock()


class DynamoDbSerialised:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with _dynamodb:
            # Materialise the body inside the lock: the write happens while it is built.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, DynamoDbSerialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
