"""nlu/rasa_speed.py and nlu/fast_proba.py: the same answers as Rasa's and sklearn's own paths."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.shared.core import events
from rasa.shared.utils.common import all_subclasses

from nlu import rasa_speed
from nlu.classifier import build_model, document, ready_to_predict
from nlu.fast_proba import FastProba


def test_every_event_type_resolves_to_the_class_rasa_finds() -> None:
    for cls in all_subclasses(events.Event):
        expected = rasa_speed._ORIGINAL_RESOLVE(cls.type_name)
        assert events.Event.resolve_by_type(cls.type_name) is expected
        assert events.Event.resolve_by_type(cls.type_name) is expected  # the remembered answer too
    assert events.Event.resolve_by_type("no_such_event", events.SlotSet) is events.SlotSet
    assert events.Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name"):
        events.Event.resolve_by_type("no_such_event")


def test_events_deserialise_as_before() -> None:
    dumped = [events.UserUttered("你好", {"name": "greet"}).as_dict(), events.SlotSet("place", "3号楼").as_dict(),
              events.ActionExecuted("action_listen").as_dict(), events.ActiveLoop("report_form").as_dict()]
    again = [events.Event.from_parameters(d) for d in dumped]
    assert [type(e) for e in again] == [events.UserUttered, events.SlotSet, events.ActionExecuted, events.ActiveLoop]
    assert [e.as_dict()["event"] for e in again] == [d["event"] for d in dumped]


TEXTS = {
    "complaint_fire_access": ["消防通道被车堵了", "楼下消防通道又被占了", "消防通道停满了电动车", "有人在消防通道堆杂物"],
    "complaint_lighting": ["楼道灯坏了", "路灯不亮了好几天", "单元门口的灯不亮", "楼梯灯一直闪"],
    "greet": ["你好", "您好啊", "早上好", "在吗"],
    "thanks": ["谢谢", "多谢了", "太感谢了", "谢谢你们"],
}


def test_fast_probabilities_are_sklearns_bit_for_bit() -> None:
    docs = [document(t, list(t)) for texts in TEXTS.values() for t in texts]
    labels = np.array([k for k, texts in TEXTS.items() for _ in texts])
    model = ready_to_predict(build_model(1.0).fit(docs * 3, np.concatenate([labels] * 3)))
    fast = FastProba.build(model)
    assert fast is not None
    probe = [document(t, list(t)) for t in ["3号楼的消防通道被堵死了", "灯坏了谢谢", "你好，路灯不亮", "完全无关的一句话", "消防", "谢"]]
    assert np.array_equal(fast(probe), model.predict_proba(probe))
    assert np.array_equal(fast(probe[:1]), model.predict_proba(probe[:1]))


def test_a_model_of_another_shape_keeps_sklearns_path() -> None:
    assert FastProba.build(object()) is None
