"""The emergency safety net: dangers now are emergencies; past events and hazards are not."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.emergency import EmergencyGuard, assess, settled


@pytest.mark.parametrize(
    "text",
    [
        "5号楼3单元着火了",
        "楼道里电动车烧起来了",
        "家里好大一股煤气味",
        "有个老人晕倒在小区门口",
        "电梯卡住了里面有人被困",
        "楼下有人拿着刀追人",
        "有人站在楼顶要跳楼",
        "小孩掉进水里了",
        "邻居家冒黑烟了",
        "有人触电了",
    ],
)
def test_dangers_now_are_emergencies(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "电梯里有人被困了二十分钟才出来",  # BRIEF: a past event is an elevator complaint
        "昨天电梯困人了，物业半小时才来",
        "楼道里堆了很多纸箱，有火灾隐患",
        "飞线充电容易着火，担心出事",
        "上周3号楼着火了，楼道墙还是黑的",
    ],
)
def test_past_events_and_hazards_are_not(text: str) -> None:
    # None: no danger word at all, DIET decides; not_now: a danger, but over or only a risk.
    assert assess(text) in {"not_now", None}
    assert assess(text.replace("有火灾隐患", "容易着火")) in {"not_now", None}


def test_present_words_outweigh_past_ones() -> None:
    assert assess("之前就漏过，现在又是一股煤气味") == "emergency"


@pytest.mark.parametrize("text", ["我的车被堵住出不来了", "轮胎没气了", "她们天天要跳广场舞", "楼上装修吵死了", "我气炸了"])
def test_everyday_complaints_name_no_danger(text: str) -> None:
    assert assess(text) is None


def _message(text: str, ranking: list[tuple[str, float]]) -> Message:
    entries = [{"name": n, "confidence": c} for n, c in ranking]
    return Message({TEXT: text, INTENT: entries[0], INTENT_RANKING_KEY: entries})


def test_guard_promotes_emergency_to_the_top() -> None:
    message = _message("楼下有人晕倒了快来人", [("complaint_safety", 0.6), ("emergency", 0.3), ("greet", 0.1)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "emergency"
    names = [r["name"] for r in message.get(INTENT_RANKING_KEY)]
    assert names == ["emergency", "complaint_safety", "greet"]


def test_guard_demotes_a_past_event() -> None:
    message = _message("电梯里有人被困了二十分钟才出来", [("emergency", 0.7), ("complaint_elevator", 0.25)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "complaint_elevator"
    assert [r["name"] for r in message.get(INTENT_RANKING_KEY)] == ["complaint_elevator", "emergency"]


def test_guard_leaves_other_messages_alone() -> None:
    message = _message("楼上装修太吵", [("complaint_noise", 0.9), ("complaint_dispute", 0.1)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "complaint_noise"


@pytest.mark.parametrize(
    "text",
    ["停车场两个人动手了，一个拿锤子往人身上抡", "有个阿伯昏低咗冇反应", "有人企喺天台话要跳落嚟", "我被反锁在地下室里面了"],
)
def test_improvised_weapons_cantonese_and_locked_in(text: str) -> None:
    from nlu.normalizer import normalise_text

    assert assess(normalise_text(text)) == "emergency"


def test_conditional_risk_is_not_now() -> None:
    assert assess("油烟管道全是油垢，哪天真烧起来咋办") == "not_now"


def test_guard_promotes_a_low_confidence_emergency_but_not_below_the_threshold() -> None:
    guard = EmergencyGuard({"confidence": 0.99, "promote_confidence": 0.1})
    unsure = _message("楼下那个人看着不太对劲", [("complaint_safety", 0.7), ("emergency", 0.15), ("greet", 0.15)])
    guard.process([unsure])
    assert unsure.get(INTENT)["name"] == "emergency"
    calm = _message("楼下那个人看着不太对劲", [("complaint_safety", 0.9), ("emergency", 0.05), ("greet", 0.05)])
    guard.process([calm])
    assert calm.get(INTENT)["name"] == "complaint_safety"


# --- The rule net, kind by kind: dangers now, in the words residents use (dialect, typos, traditional, emoji).
@pytest.mark.parametrize(
    "text",
    [
        # fire
        "救火啊", "快 3单元着火", "着活了 快来人", "樓道著火了 大家快下樓", "🔥🔥 5号楼 快", "楼道里烟太呛了 看不清路",
        "车库有辆车烧得噼里啪啦的", "液化气罐着了", "厨房炸了 到处是火", "快叫消防车",
        # gas and carbon monoxide
        "屋里煤气好大", "天然气管道破了", "家里没气味好重 头好晕", "一进门就闻到一股怪味 像煤气 我头好晕",
        "煤气灶上的胶管脱了 气一直往外冒", "冬天烧蜂窝煤 一家三口早上都起不来 头疼想吐", "燃气报警器一直在叫",
        # collapsed, injured, poisoned, electrocuted, drowning
        "有人晕在楼道里了", "一個老伯倒咗喺地下", "我爸胸口好痛 满头大汗 脸都白了", "我老伴突然说不了话 嘴也歪了",
        "邻居被狗咬了 腿上好大的口子", "孩子喝了消毒水", "有人被电线电到了", "小孩触电了 手还在插座上",
        "外卖小哥被电动车撞飞了", "有人在水池里 不会游泳", "孩子在河边玩 掉下去了", "小区游泳池有个人沉底了",
        "俺爷爷吃饭噎着了 脸憋得发紫", "我老公喝多了吐了 现在叫不醒",
        # trapped now, elevator included
        "电梯困住人了", "电梯卡在12楼 我女儿在里面", "我一个人在电梯里 停在半道上了 按铃没人应 快来",
        "7号楼电梯停在半空 里面有个孕妇", "电梯下坠了 我们在里面", "车里有个小孩 被锁着 车窗都是汗",
        "门坏了 奶奶一个人在卫生间出不来 八十多了", "厕所门锁坏了 我家老人在里面好久没动静",
        "地下车库进水 有辆车里还有人没出来", "电梯门开了一半卡住 有人半个身子在外面",
        # weapons
        "拿刀砍人了", "两个人在停车场打架 一个拿着铁锹", "好几个人围着一个小伙子打 手里拿着棒球棍",
        "有两个人在楼下拼刀子", "有人持棍闹事 已经打伤好几个了", "楼上打架 女的喊救命 男的拿凳子往她身上砸",
        # about to jump
        "有个人站在楼顶边上", "楼上窗户外面站着一个小孩", "有人坐在18楼窗户上", "我閨女要跳樓",
        "有人在天台 说活不下去了", "楼上有小孩半个身子探出窗外 大人不在家", "楼顶有个学生在边上走来走去 喊他也不理",
        # someone else calls for help
        "楼上一直在喊救命",
    ],
)
def test_more_dangers_now_are_emergencies(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        # the aftermath sits next to the event: "现在" belongs to the complaint
        "上周三我被困在电梯里40多分钟，后来消防来了才弄出来，物业到现在也没个说法",
        "昨天有人被困电梯，已经救出来了，可电梯到现在还是停着没人修",
        "电梯下坠过一次 虽然没伤到人 大家都很害怕",
        "被困电梯的事都过去一周了 物业还是没给说法",
        "国庆那会儿我妈在电梯里困了四十分钟，出来血压都上去了",
        # resolved, or nothing there
        "刚才闻到煤气味 燃气公司来看了说没漏 是隔壁做饭的味",
        "大半夜有人在楼下喊救命 原来是喝醉了在唱歌",
        "前几天有小孩掉进景观池 幸好被捞上来了 池子边上能不能加个围栏",
        # hazards and habits
        "楼道灭火器全是空的 着火了根本用不上",
        "小区里好多电动车在楼道充电 早晚要着火",
        "热水管烫手 小孩碰到会被烫到",
        "楼下嫌我家孩子跑跳吵，天天拿棍子捅天花板",
        "楼上小孩天天玩游戏喊救命 吵死了",
        "电梯又坏了 老人被困在家里下不了楼",
        "单杠底下的防护垫没了，孩子玩掉下来就是水泥地",
        # animals, things, cars
        "我家猫被困在空调外机上下不来了",
        "流浪猫被车撞死了在路边 没人收",
        "我的车被困在车位里出不来 前面有人把路堵死了",
        "消防栓被车撞歪了好几个月",
        "我的手机掉到井里了",
        # not a fire, not gas
        "燃气怎么停了，灶打不着火，也没通知",
        "下水井口老是冒泡，一股子臭鸡蛋味",
        "暖气阀门一直在喷气",
        "楼下烧烤烟太大了 呛得我没法开窗",
        "中午有人在楼下放鞭炮 烟好大",
        "天然气压力小，火苗小得跟蜡烛一样",
        # not a weapon, not a jump
        "小孩拿着玩具刀在楼道里乱跑",
        "有人拿凳子占车位",
        "楼顶有人晒被子 站在边上收 挺危险的",
        "有人翻过栏杆进小区",
    ],
)
def test_aftermath_hazards_animals_and_things_are_not_emergencies(text: str) -> None:
    assert assess(text) in {"not_now", None}


@pytest.mark.parametrize(
    "text",
    ["救命啊 楼上装修吵死了", "冷得我快不行了 暖气到底啥时候来", "电梯里闷得喘不上气", "楼下打麻将 吵得人想跳楼",
     "物业气得我吐血", "楼下烧烤摊烟熏火燎的 窗户都不敢开", "谁在绿化带里烧树叶 熏死人了"],
)
def test_idioms_and_fires_lit_on_purpose_are_not_now(text: str) -> None:
    # Danger words only in an idiom, or a fire lit on purpose: a DIET emergency is demoted.
    assert assess(text) == "not_now"


def test_a_cry_for_help_outweighs_an_earlier_past() -> None:
    assert assess("上次就着过火 这次又烧起来了 快来") == "emergency"
    assert assess("火已经灭了 但是我妈被烟呛晕了") == "emergency"  # the ending is before the new danger


@pytest.mark.parametrize(
    "text",
    ["楼下的火已经被保安灭了 就是烧了个垃圾桶 麻烦来清理一下", "上周有个人在天台站了半天 后来被劝下来了 天台门能不能锁起来",
     "晚上地下车库有人吵架 差点打起来", "地下车库烟感一直在响 也没看到有烟 是不是坏了"],
)
def test_settled_messages_without_a_danger_word(text: str) -> None:
    assert assess(text) is None
    assert settled(text)


@pytest.mark.parametrize("text", ["楼下那个人看着不太对劲", "楼顶有个人 快来", "有人一直在敲我家门"])
def test_open_messages_are_not_settled(text: str) -> None:
    assert not settled(text)


def test_guard_demotes_a_settled_message_even_without_a_danger_word() -> None:
    guard = EmergencyGuard({"confidence": 0.99, "promote_confidence": 0.1})
    message = _message("上周有个人在天台站了半天 后来被劝下来了 天台门能不能锁起来",
                       [("emergency", 0.74), ("complaint_property", 0.2), ("complaint_safety", 0.06)])
    guard.process([message])
    assert message.get(INTENT)["name"] == "complaint_property"
    low = _message("我家猫被困在空调外机上下不来了", [("complaint_pets", 0.6), ("emergency", 0.3)])
    guard.process([low])
    assert low.get(INTENT)["name"] == "complaint_pets"


@pytest.mark.parametrize(
    "text",
    [
        "还好我发现得早 但是我妈已经晕过去了",  # the ending comes before the danger
        "原来是燃气管道裂了 现在还在漏",  # it goes on
        "我被困在电梯里 之前也困过一次",  # the past is a remark after the danger
        "电梯已经卡了半小时了 我们还在里面",
        "已经报警了 那个人还拿着刀在楼下",
        "昨天开始就闻到煤气味 今天更重了",
        "有个小男孩掉进小区的鱼池里 捞上来没呼吸了",  # 鱼池 is a place, not an animal subject
        "我邻居拿着锤子要砸死他老婆",
        "我老婆要生了 羊水破了 救护车还没来",
        "暴雨把地下室淹了 还有人在里面没出来",
    ],
)
def test_endings_pasts_and_animals_do_not_hide_a_danger_now(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "人是跑出来了 可火还没灭",  # the people got out, the fire goes on
        "二楼着火了 三楼还有人没下来",
        "屋里生着煤炉子 全家都头晕想吐",  # carbon monoxide, symptoms after the stove
        "老爸说头疼恶心 屋里开着炭盆烤火 窗户全关着",  # symptoms before the brazier
        "一直在说头晕，昨晚在家里烤火取暖。我正在等楼下物业修暖气",  # a heating complaint beside it
        "zhao huo le 5 hao lou",  # pinyin
        "dian ti li kun ren le",
        "我和孩子在楼顶上下不去了 门被锁了",
        "奶奶在卫生间好久没出来 敲门一点反应都没有",
        "電梯困咗人",  # Cantonese
        "卡电梯里了 快来人",
    ],
)
def test_co_pinyin_cantonese_and_people_still_inside_are_emergencies(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "去年楼道着过一次火 现在杂物又堆满了",  # a fire named in the past
        "窨井盖丢了 还好没人掉下去",
        "天台边上有人晾衣服 衣架老往下掉",
        "那是饭店的油烟 不是着火",
        "跳楼价清仓的喇叭吵了一整天",
        "新闻里说电动车在楼道充电会起火 我们楼就有人这么干",
    ],
)
def test_past_fires_negations_news_and_prices_are_not_emergencies(text: str) -> None:
    assert assess(text) != "emergency"


def test_a_stove_that_will_not_light_is_settled() -> None:
    assert settled("燃气灶打不着火 是不是停气了")


@pytest.mark.parametrize(
    "text",
    [
        "上周就跟你们说过楼道乱充电。今天车棚里一辆电瓶车烧起来了 烟往楼上冒",  # last week's report, today's fire
        "煤气罐的阀门坏了 一直往外喷气 谁来把火都灭了啊 旁边还在炒菜",  # a request, not an ending
        "外卖小哥在门口突然倒了 叫他也不太清醒了",  # 不清醒 is not 醒了
        "电梯刚才往下掉了一截 里面还有孩子 只好在这里打字",  # 只好在 is not 好在
        "燃气灶边上的管子裂了 一直有味道",
        "我爸癫痫发作了 抽了好几分钟还没停",
        "车锁了 钥匙在里面 孩子在后座上 太阳晒着",
        "女儿发消息说照顾好自己 然后就关机了",
        "孩子把纽扣电池吞下去了",
    ],
)
def test_long_messages_sentences_and_requests_keep_a_danger_now(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "装修吵了三个月 我快被逼得跳楼了",
        "两个月前被狗咬过 现在伤口有点痒",
        "楼道应急灯全坏了 真停电着火了往哪跑",
    ],
)
def test_jokes_old_bites_and_what_ifs_are_not_emergencies(text: str) -> None:
    assert assess(text) != "emergency"
