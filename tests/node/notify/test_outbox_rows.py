"""The subjects column of an outbox row is the JSON the notification's readers parse: built by hand for speed, it must
be what json.dumps makes of the same list, for any text (quotes, backslashes, control and non-ASCII characters).
A row's notification id is a UUID v4 as the protocol checks it, and ids sort in the order they were made."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings, strategies as st

from node.notify.outbox import _subjects, new_notification_id
from protocol import Notification, Subject


@settings(max_examples=300, deadline=None)
@given(subject=st.text(max_size=40), record_id=st.text(max_size=40))
def test_subjects_are_what_json_dumps_makes(subject: str, record_id: str) -> None:
    for rid in (record_id, subject):
        made = _subjects(subject, rid)
        assert made == json.dumps([{"subject": subject} | ({} if rid == subject else {"record_id": rid})])
        assert json.loads(made) == [{"subject": subject} | ({} if rid == subject else {"record_id": rid})]


def test_subjects_of_awkward_text() -> None:
    assert _subjects('a"b\\c\n\u00e9\U0001f600', "x") == '[{"subject": "a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00", "record_id": "x"}]'
    assert _subjects("WlzIndicatie/1", "WlzIndicatie/1") == '[{"subject": "WlzIndicatie/1"}]'


def test_notification_ids_are_uuid4_as_the_protocol_checks_them_and_sort_in_the_order_made() -> None:
    made = []
    for _ in range(3):
        made += [new_notification_id() for _ in range(2000)]
        time.sleep(0.002)  # the next ones fall in a later millisecond
    assert len(set(made)) == len(made)
    assert [i[:13] for i in made] == sorted(i[:13] for i in made)  # the time part
    assert made[0][:13] < made[-1][:13]
    path = "WlzIndicatie/31835d1d-3933-4ffe-9f57-8985f41fae4a"
    for ident in made[::500]:
        note = Notification(notification_id=ident, event_type="NIEUWE_INDICATIE_ZORGKANTOOR", timestamp=1,
                            sender_id_type="KVK", sender_id="62253778", receiver_id_type="UZOVI", receiver_id="5151",
                            subscription_id=None, subjects=(Subject(subject=path, record_id=path),))
        assert Notification.from_cbor(note.to_cbor()).notification_id == ident
    assert int(made[-1][:8] + made[-1][9:13], 16) // 1000 in range(int(time.time()) - 5, int(time.time()) + 1)
