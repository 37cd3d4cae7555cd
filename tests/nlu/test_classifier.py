"""The intent classifier (nlu/classifier.py) and the emergency guard's uncertain tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.classifier import TfidfIntentClassifier, clauses
from nlu.emergency import EmergencyGuard, assess

TRAIN = {
    "complaint_sewage": ["下水道堵了", "污水井冒水了", "下水道反味", "雨水井堵住了", "楼下下水道堵了好几天",
                         "排水沟堵了积水", "化粪池满了漏出来", "厨房下水管堵了"],
    "complaint_noise": ["楼上装修太吵", "广场舞声音太大", "半夜施工吵死了", "KTV太吵了", "楼下店铺喇叭太吵",
                        "空调外机噪音大", "晚上有人唱歌扰民", "早上七点就开始电钻"],
    "out_of_scope": ["我的养老金怎么少发了", "社保怎么补缴", "孩子上学怎么报名", "医保报销比例多少",
                     "公司拖欠工资怎么办", "公积金怎么提取", "户口怎么迁", "驾照扣分怎么查"],
    "greet": ["你好", "您好", "在吗", "早上好", "哈喽", "你好呀", "在不在", "晚上好"],
}


def _tokenised(messages: list[Message]) -> list[Message]:
    """What the pipeline's JiebaTokenizer does before the classifier."""
    context = ExecutionContext(graph_schema=None, model_id="test")  # type: ignore[arg-type]
    tokenizer = JiebaTokenizer.create({**JiebaTokenizer.get_default_config(), "dictionary_path": None},
                                      None, None, context)  # type: ignore[arg-type]
    return tokenizer.process(messages)  # type: ignore[no-any-return]


def _message(text: str) -> Message:
    return _tokenised([Message({TEXT: text})])[0]


def _trained(tmp_path: Path) -> TfidfIntentClassifier:
    examples = _tokenised([Message({TEXT: text, INTENT: intent}) for intent, texts in TRAIN.items()
                           for text in texts])
    storage = LocalModelStorage(tmp_path)
    resource = Resource("classifier")
    context = ExecutionContext(graph_schema=None, model_id="test")  # type: ignore[arg-type]
    component = TfidfIntentClassifier.create(TfidfIntentClassifier.get_default_config(), storage, resource, context)
    component.train(TrainingData(examples))
    return TfidfIntentClassifier.load(TfidfIntentClassifier.get_default_config(), storage, resource, context)


def test_trains_persists_and_ranks(tmp_path: Path) -> None:
    component = _trained(tmp_path)  # loaded back from the model storage
    [message] = component.process([_message("楼上又在装修，电钻声太吵了")])
    assert message.get(INTENT)["name"] == "complaint_noise"
    ranking = message.get(INTENT_RANKING_KEY)
    assert [r["name"] for r in ranking][0] == "complaint_noise"
    assert abs(sum(r["confidence"] for r in ranking) - 1.0) < 1e-6  # every intent, probabilities


def test_sentences_of_a_long_message() -> None:
    text = "你好。下水道堵了三天了！另外问一下养老金的事？好"
    assert [text[a:b] for a, b in clauses(text, 4)] == ["下水道堵了三天了！", "另外问一下养老金的事？"]


def test_complaint_beside_out_of_scope_question_is_the_complaint_with_a_referral(tmp_path: Path) -> None:
    component = _trained(tmp_path)
    component.config.update(clause_complaint=0.3, clause_out_of_scope=0.3)  # the tiny model is unsure
    text = "我的养老金怎么少发了，社保怎么补缴。楼下下水道堵了好几天，污水井冒水了。"
    message = _message(text)
    ranking, extra = component.rank(component._document(message), text, message)
    assert ranking[0]["name"] == "complaint_sewage"
    assert extra == {"out_of_scope_also": True}
    plain = "楼下下水道堵了好几天，污水井冒水了"
    message = _message(plain)
    ranking, extra = component.rank(component._document(message), plain, message)
    assert ranking[0]["name"] == "complaint_sewage" and extra == {}


def test_a_short_message_listing_different_problems_names_each_with_its_words(tmp_path: Path) -> None:
    component = _trained(tmp_path)
    component.config.update(problem_confidence=0.3, problem_whole_below=1.01)  # the tiny model is unsure
    text = "楼下下水道堵了好几天，楼上装修太吵了"
    message = _message(text)
    _, extra = component.rank(component._document(message), text, message)
    problems = extra["problems"]
    assert [p["intent"] for p in problems] == ["complaint_sewage", "complaint_noise"]
    assert [text[p["start"]:p["end"]] for p in problems] == ["楼下下水道堵了好几天", "楼上装修太吵了"]
    # the same problem said twice is one problem; a long message is never split
    for plain in ("楼下下水道堵了好几天，污水井冒水了", "楼下下水道堵了好几天，楼上装修太吵了" * 4):
        message = _message(plain)
        assert "problems" not in component.rank(component._document(message), plain, message)[1]


def test_untrained_component_leaves_messages_alone(tmp_path: Path) -> None:
    context = ExecutionContext(graph_schema=None, model_id="test")  # type: ignore[arg-type]
    component = TfidfIntentClassifier.load({}, LocalModelStorage(tmp_path), Resource("none"), context)
    [message] = component.process([_message("你好")])
    assert message.get(INTENT) is None


@pytest.mark.parametrize("text", [
    "救命啊！！5号楼2单元我家厨房着火了，火好大，我们全家已经跑出来了，快来人",  # people out, fire on
    "刚才着的火现在还在烧",
    "人倒下了叫不醒",
    "燃气味很重 我们已经出来了",
    "電梯裡困了個人，已經半個小時了，還沒出來",
    "我爸还关在8号楼1单元的电梯里，半小时了",
    "大火已经烧到楼道里了，火还在往上蹿",
])
def test_past_tense_details_of_a_danger_that_goes_on(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize("text", [
    "被困了二十分钟才出来",
    "厨房着火了，已经灭了",
    "昨天楼道着火了，幸好人都跑出来了",
    "煤气味已经没了 师傅说是阀门松了拧紧了",
])
def test_fully_over_is_not_an_emergency(text: str) -> None:
    assert assess(text) == "not_now"


def test_uncertain_danger_is_flagged_not_filed() -> None:
    guard = EmergencyGuard({"confidence": 0.99, "promote_confidence": 0.35, "possible_confidence": 0.1})
    ranking = [{"name": "complaint_safety", "confidence": 0.7}, {"name": "emergency", "confidence": 0.2},
               {"name": "greet", "confidence": 0.1}]
    message = Message({TEXT: "楼下那个人看着不太对劲", INTENT: ranking[0], INTENT_RANKING_KEY: ranking})
    [out] = guard.process([message])
    assert out.get(INTENT)["name"] == "complaint_safety"  # the normal report flow carries on
    assert out.get("emergency_possible") is True  # the numbers to call come first
    sure = Message({TEXT: "楼下那个人看着不太对劲", INTENT: ranking[0],
                    INTENT_RANKING_KEY: [ranking[0], {"name": "emergency", "confidence": 0.05}]})
    [out] = guard.process([sure])
    assert out.get("emergency_possible") is None


@pytest.mark.parametrize("text", [
    "我爸说话舌头发硬，左边手脚动不了",  # a stroke
    "孩子被楼下的大狗咬了，血止不住",  # the child is the subject, not the dog
    "有个人躺在单元门口一动不动",  # 一动不动 is not the habit 动不动
    "昨天说过的楼道杂物，现在出事了！杂物着了",  # a now-word after the past one
    "对面楼窗户冒火了！！",
])
def test_more_ways_of_saying_a_danger_now(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize("text", [
    "刚才有人被关在电梯里，几分钟就出来了，没事",
    "保洁把树叶堆在一起直接烧，烟好大",
    "我的手机掉到井里了",
])
def test_more_ways_of_saying_it_is_over_or_harmless(text: str) -> None:
    assert assess(text) != "emergency"
