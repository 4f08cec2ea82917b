"""moto's server, with DynamoDB requests applied one at a time.

DynamoDB evaluates a write's condition and applies it atomically: of fifty concurrent
conditional puts of one item, exactly one succeeds. moto 5.2.5 serves requests on many
threads and checks a condition and applies the write as separate steps, so two racing
transactions can both pass `attribute_not_exists` (seen with aloft's concurrent-create
test: two users with one email). Serialising DynamoDB requests restores the guarantee
the product relies on without changing a byte of what the SDK sends or receives. Other
services (SQS long polls in particular) stay concurrent.

moto's DynamoDB Streams keeps every shard iterator it ever issued, and a stream mapping
polling four times a second gets two per poll (aloft-local asks for a fresh one every
poll and never reuses one). Each iterator also holds the stream shard it was issued on,
and moto rolls a cancelled transaction back by swapping in a copy of the whole table:
held iterators kept those copies alive, and a test run's moto grew to many GiB. So an
iterator here is good for one `GetRecords` and at most a minute (DynamoDB allows 15
minutes and re-reads, which nothing in aloft does).

moto's CloudWatch has no percentile statistics (its `Statistics.get_statistics_for_type`
knows Sum, Average, Minimum, Maximum and SampleCount): `GetMetricData` asking for `p99`
answered 500 and `GetMetricStatistics` ignored `ExtendedStatistics`. This launcher
teaches it CloudWatch's documented definition, nearest rank over the period's raw
values (`pNN` and `pNN.N`), so functions ask for percentiles exactly as in AWS. A period
with only pre-aggregated values (`StatisticValues`) has no percentile, as in CloudWatch:
its datapoint is left out rather than answered as null.

Usage: python moto_server.py HOST PORT
"""

import math
import re
import sys
import threading
from decimal import Decimal
import time

from werkzeug.serving import run_simple

from moto.cloudwatch import models as cloudwatch
from moto.cloudwatch import responses as cloudwatch_responses
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
        # Streams reads too: moto applies a transaction's items one by one and restores the
        # tables if one fails, so a GetRecords in between would see (and relay) the outbox
        # record of a transaction that is then cancelled.
        if not target.startswith(("DynamoDB_", "DynamoDBStreams_")):
            return self.app(environ, start_response)
        with _dynamodb:
            # Materialise the body inside the lock: the write happens while it is built.
            return list(self.app(environ, start_response))


ITERATOR_LIFETIME = 60
_issue = streams.ShardIterator.__init__
_get_records = streams.DynamoDBStreamsBackend.get_records
_last_sweep = [time.monotonic()]


def _issued(self, *args, **kwargs):
    _issue(self, *args, **kwargs)
    self.issued_at = time.monotonic()


def _get_records_expiring(self, iterator_arn, limit):
    # A cancelled transaction leaves the table restored from a copy, stream shard
    # included, while an iterator taken before it still holds the old shard, which has
    # the cancelled transaction's records (they would be relayed as if committed, and the
    # next real record, reusing a sequence number, skipped). Read the table's current shard.
    it = self.shard_iterators.get(iterator_arn)
    if it is not None:
        current = self.dynamodb.tables.get(it.stream_shard.table.name)
        if current is not None and current.stream_shard is not None:
            it.stream_shard = current.stream_shard
    now = time.monotonic()
    if now - _last_sweep[0] > 10:
        _last_sweep[0] = now
        for arn, old in list(self.shard_iterators.items()):
            if now - getattr(old, "issued_at", now) > ITERATOR_LIFETIME:
                self.shard_iterators.pop(arn, None)
    try:
        return _get_records(self, iterator_arn, limit)
    finally:
        # Used once: let go of it (and of the table copy its shard may belong to).
        self.shard_iterators.pop(iterator_arn, None)


streams.ShardIterator.__init__ = _issued
streams.DynamoDBStreamsBackend.get_records = _get_records_expiring


PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


def nearest_rank(values, percent):
    """CloudWatch's percentile: the smallest value with at least `percent` % of the
    values at or below it (`percent` a decimal string, exact for p99.9)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(Decimal(percent) * len(ordered) / 100))
    return ordered[rank - 1]


_statistic = cloudwatch.Statistics.get_statistics_for_type
_metric_data = cloudwatch.CloudWatchBackend.get_metric_data
_metric_statistics = cloudwatch.CloudWatchBackend.get_metric_statistics
_metric_statistics_response = cloudwatch_responses.CloudWatchResponse.get_metric_statistics
_extended = threading.local()


def _statistic_with_percentiles(self, stat):
    match = PERCENTILE.match(stat or "")
    if match:
        return nearest_rank(self.metric_single_values_list, match.group(1))
    return _statistic(self, stat)


def _metric_data_without_gaps(self, *args, **kwargs):
    results = _metric_data(self, *args, **kwargs)
    for r in results:
        kept = [(t, v) for t, v in zip(r["timestamps"], r["values"]) if v is not None]
        r["timestamps"] = [t for t, _ in kept]
        r["values"] = [v for _, v in kept]
    return results


def _metric_statistics_extended(self, *args, **kwargs):
    datapoints = _metric_statistics(self, *args, **kwargs)
    wanted = getattr(_extended, "stats", None) or []
    for d in datapoints:
        values = {s: nearest_rank(d.metric_single_values_list, PERCENTILE.match(s).group(1)) for s in wanted if PERCENTILE.match(s)}
        d.extended_statistics = {s: v for s, v in values.items() if v is not None} or None
    return datapoints


def _metric_statistics_response_extended(self):
    _extended.stats = self._get_param("ExtendedStatistics") or []
    try:
        return _metric_statistics_response(self)
    finally:
        _extended.stats = None


cloudwatch.Statistics.get_statistics_for_type = _statistic_with_percentiles
cloudwatch.CloudWatchBackend.get_metric_data = _metric_data_without_gaps
cloudwatch.CloudWatchBackend.get_metric_statistics = _metric_statistics_extended
cloudwatch_responses.CloudWatchResponse.get_metric_statistics = _metric_statistics_response_extended


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, DynamoDbSerialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
