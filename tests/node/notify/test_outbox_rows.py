"""The subjects column of an outbox row is the JSON the notification's readers parse: built by hand for speed, it must
be what json.dumps makes of the same list, for any text (quotes, backslashes, control and non-ASCII characters)."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from node.notify.outbox import _subjects


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
