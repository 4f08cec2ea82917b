"""moto's server, with DynamoDB requests applied one at a time.

DynamoDB evaluates a write's condition and applies it atomically: of fifty concurrent
conditional puts of one item, exactly one succeeds. moto 5.2.5 serves requests on many
threads and checks a condition and applies the write as separate steps, so two racing
transactions can both pass `attribute_not_exists` (seen with aloft's concurrent-create
test: two users with one email). Serialising DynamoDB requests restores the guarantee
the product relies on without changing a byte of what the SDK sends or receives. Other
services (SQS long polls in particular) stay concurrent.

moto's DynamoDB Streams keeps every shard iterator it ever issued, and a stream mapping
polling four times a second gets two per poll: a long `make run` would grow without
bound. DynamoDB expires an iterator 15 minutes after issuing it; so does this launcher.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.dynamodbstreams import models as streams
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


ITERATOR_LIFETIME = 15 * 60
_issue = streams.ShardIterator.__init__
_get_records = streams.DynamoDBStreamsBackend.get_records
_last_sweep = [time.monotonic()]


def _issued(self, *args, **kwargs):
    _issue(self, *args, **kwargs)
    self.issued_at = time.monotonic()


def _get_records_expiring(self, iterator_arn, limit):
    now = time.monotonic()
    if now - _last_sweep[0] > 60:
        _last_sweep[0] = now
        for arn, it in list(self.shard_iterators.items()):
            if now - getattr(it, "issued_at", now) > ITERATOR_LIFETIME:
                self.shard_iterators.pop(arn, None)
    return _get_records(self, iterator_arn, limit)


streams.ShardIterator.__init__ = _issued
streams.DynamoDBStreamsBackend.get_records = _get_records_expiring


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, DynamoDbSerialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
