"""A bounded, seeded run of the fuzzers in tests/fuzzing.py (a longer one:
``python tools/fuzz.py --count 10000``). Every mutant is accepted or
rejected with one bounded line, in time, without echoing a password, and a
sample accepted is one every wire format can encode.
"""

from tests import base
from tests import fuzzing
from tests import fuzzing_surfaces as surfaces

COUNT = 300


class TestFuzz(base.TestCase):

    def check(self, report):
        assert report.runs == COUNT
        assert report.findings == [], '\n'.join(report.findings[:10])
        # Both outcomes happen: the mutants are neither all broken nor all
        # harmless, so the run tests something.
        assert report.accepted and report.rejected, report

    def test_pipeline_event_pipeline_and_polling_files(self):
        self.check(fuzzing.run_yaml(self.conf, self.tmpdir, COUNT, seed=1))

    def test_publisher_urls_and_delivery_options(self):
        self.check(fuzzing.run_urls(self.conf, COUNT, seed=2))

    def test_samples_from_the_cli_and_the_python_api(self):
        self.check(fuzzing.run_samples(COUNT, seed=3))

    def test_notifications_through_the_converter_and_the_cli(self):
        report = surfaces.run_notifications(self.conf, self.tmpdir, 150,
                                            seed=4)
        assert report.runs == 150
        assert report.findings == [], '\n'.join(report.findings[:10])
        assert report.accepted and report.rejected, report

    def test_alertmanager_webhook_bodies(self):
        self.check(surfaces.run_receiver(self.conf, self.tmpdir, COUNT,
                                         seed=5))

    def test_dynamic_pollster_definitions_and_operations(self):
        self.check(surfaces.run_dynamic(COUNT, seed=6, tmpdir=self.tmpdir))

    def test_raw_http_requests(self):
        report = surfaces.run_http(100, seed=7)
        assert report.findings == [], '\n'.join(report.findings[:10])
        assert report.runs == 100 and report.rejected, report

    def test_alarming_api_bodies_filters_and_queries(self):
        from tests import fuzzing_api
        self.check(fuzzing_api.run_api(COUNT, seed=9))

    def test_events_against_event_alarms(self):
        from tests import fuzzing_api
        self.check(fuzzing_api.run_events(COUNT, seed=10))

    def test_prometheus_answers_to_batched_alarm_queries(self):
        from tests import fuzzing_api
        self.check(fuzzing_api.run_prometheus_batches(self.conf, COUNT,
                                                      seed=11))

    def test_remote_write_receivers_answers(self):
        from tests import fuzzing_api
        self.check(fuzzing_api.run_remote_write_answers(self.conf, COUNT,
                                                        seed=12))

    def test_messages_from_the_bus_through_the_direct_consumer(self):
        from tests import fuzzing_bus
        self.check(fuzzing_bus.run_direct_messages(self.conf, COUNT,
                                                   seed=13))
