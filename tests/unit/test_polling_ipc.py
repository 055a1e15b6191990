"""telemetry.polling notifications (Ceilometer's polling IPC) through the
converter: samples unchanged, signatures verified, poison refused.
"""

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.formats import ceilometer
from telemetry_lib.notification import converter
from telemetry_lib.notification import ipc
from telemetry_lib import Sample
from tests import base


def note(messages):
    return {'event_type': 'telemetry.polling',
            'publisher_id': 'ceilometer.polling', 'priority': 'SAMPLE',
            'payload': {'samples': messages},
            'metadata': {'message_id': 'n1',
                         'timestamp': '2026-12-05 10:00:00.000000'}}


class TestPollingIpc(base.TestCase):

    def samples(self):
        return [Sample('cpu', 'cumulative', 'ns', i, resource_id='r%d' % i,
                       user_id='u', project_id='p', user_name='alice',
                       resource_metadata={'host': 'h'})
                for i in range(3)]

    def test_samples_come_back_unchanged_and_make_no_event(self):
        sent = self.samples()
        conv = converter.Converter([], [], secret=None)
        result = conv.convert(note(ceilometer.samples_to_wire(sent)),
                              'sample')
        assert result.samples == sent and result.events == []
        assert [s.id for s in result.samples] == [s.id for s in sent]
        assert result.samples[0].user_name == 'alice'

    def test_signatures_are_verified_when_a_secret_is_set(self):
        sent = self.samples()
        wire = ceilometer.samples_to_wire(sent, 'k')
        wire[1]['counter_volume'] = 1000            # tampered
        unsigned = ceilometer.samples_to_wire(sent[2:], None)[0]
        unsigned['message_signature'] = ''
        conv = converter.Converter([], [], secret='k')
        result = conv.convert(note(wire[:2] + [unsigned, 'not a dict']))
        assert [s.id for s in result.samples] == [sent[0].id]
        assert [kind for kind, _ in result.problems] == [
            'bad_signature'] * 3

    def test_a_bad_message_costs_itself_only(self):
        wire = ceilometer.samples_to_wire(self.samples())
        del wire[0]['counter_volume']
        samples, problems = ipc.samples_of(note(wire))
        assert len(samples) == 2
        assert problems[0][0] == 'bad_sample'

    def test_no_samples_list_is_poison(self):
        for payload in ({}, {'samples': 'x'}, [], None):
            body = note([])
            body['payload'] = payload
            with self.assertRaises(InvalidSample):
                converter.Converter([], []).convert(body)


class TestNotifierPublisherInput(base.TestCase):
    """What Ceilometer's notifier publisher sends (the collector's input):
    ``metering`` and ``event`` notifications whose payload is the list.
    """

    def test_metering_and_event_notifications(self):
        from telemetry_lib import Event
        sent = [Sample('m', 'gauge', '1', i, resource_id='r') for i in
                range(3)]
        body = note([])
        body.update(event_type='metering',
                    payload=ceilometer.samples_to_wire(sent, 'k'))
        conv = converter.Converter([], [], secret='k')
        result = conv.convert(body, 'sample')
        assert result.samples == sent and not result.problems
        events = [Event(event_type='compute.instance.create.end',
                        traits=[('host', 1, 'h')])]
        wire = ceilometer.events_to_wire(events, 'k')
        body = note([])
        body.update(event_type='event',
                    payload=wire + [dict(wire[0], traits=[])])
        result = conv.convert(body, 'sample')
        assert [e.message_id for e in result.events] == [
            events[0].message_id]
        assert result.samples == []
        assert [k for k, _ in result.problems] == ['bad_signature']
        body['payload'] = {'not': 'a list'}
        with self.assertRaises(InvalidSample):
            conv.convert(body)
