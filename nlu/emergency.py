"""Rasa component: a rule safety net so that an emergency is never missed.

BRIEF: the bot must never miss an emergency (life or property in danger now).
A learned classifier alone cannot promise that, so this component runs after
DIET and, when the text names a danger that is happening now — fire, gas,
someone collapsed or injured, someone trapped, a fight with weapons, someone
about to jump, drowning, a collapse — puts `emergency` at the top of the
ranking. It also works the other way: when DIET says `emergency` but the text
describes something that is over ("被困了二十分钟才出来") or only a hazard
("有火灾隐患"), the emergency is demoted to the next intent.

How a message is judged (`assess`; the rule sets are data below):
1. The text is normalised (traditional → simplified, 著 → 着) and idioms that
   borrow danger words are blanked ("冷得我快不行了", "闷得喘不上气", "吵得人想
   跳楼"). A message whose only danger words were idioms, or a fire lit on
   purpose ("烧树叶", "烧烤"), is not now.
2. DANGER names the dangers by kind, including the ways residents write them
   (homophones 着活了/没气味, dialect 晕咗/昏起了, emoji 🔥, indirect "喊救命",
   "里面还有人", "快叫救护车"). "救命" alone is not a danger.
3. People-only kinds (collapsed, injured, trapped, water, fall) do not count
   when an animal or a thing is plainly the subject ("我家猫被困在…", "我的车被
   困…"), nor smoke from a barbecue, a smell from a sewer, a car that is only
   blocked in.
4. Time is judged for each danger on its own clause(s) (split at punctuation
   and spaces), because residents put the aftermath next to the event: in
   "上周被困在电梯里，物业到现在也没个说法" the "现在" belongs to the
   complaint. An ending in the danger's clause or after it ("已经被救出来了",
   "说没漏", "…原来是喝醉了") makes it over unless it goes on ("还在漏"); a
   risk word before it ("容易着火", "哪天真烧起来") makes it hypothetical; a
   now-word ("现在又是一股煤气味") makes it now; a past or habit word in its
   clause ("上周着火了", "天天拿棍子捅天花板") makes it past.
5. Any danger now → emergency. A danger with no time word → emergency, unless
   a past time before it dates the whole story and nobody cries for help.
   Otherwise not now, unless someone cries for help ("快来", "快救").

`settled` covers messages that name no danger rule but say the event is over,
a habit or a risk; the guard then demotes a DIET emergency as well.

The rules are data below; each one says what it is for. A false alarm costs
a resident one extra message; a missed emergency can cost a life.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from core.text import normalise

EMERGENCY = "emergency"
NOT_NOW = "not_now"

# Building blocks of the rules below.
PERSON = (r"人|我|咱|俺|孩子|小孩|娃|宝宝|小朋友|学生|老人|老太|老头|老爷子|大爷|大妈|大叔|大哥|大姐|阿姨|叔|伯|"
          r"婆婆|奶奶|爷爷|外婆|外公|姥姥|姥爷|妈|爸|爹|娘|老公|老婆|媳妇|丈夫|儿子|女儿|闺女|孙子|孙女|他|她|"
          r"邻居|工人|师傅|保安|保洁|男的|女的|小伙|姑娘|孕妇|路人|行人|外卖|快递员|小哥|男孩|女孩|男生|女生|孩|婴儿|病人")
# Animals and things: a danger that befalls only them is not an emergency
# ("流浪猫被车撞了", "我的车被困在车位里", "电梯一动不动").
ANIMAL = r"(?:猫|狗|鸟|鸽子|鸡|鸭|宠物)(?![池塘窝笼粮食蛋眼肉屎粪绳链])"
# A thing is the subject only before 被 or a verb of falling ("消防栓被车撞歪了", "我的车被困…").
THING = (r"(?:车|车子|自行车|树|墙|牌子|柜子|井盖|花盆|手机|钥匙|消防栓|站牌|栏杆|护栏|垃圾桶|篮球场|场地|路面)"
         r"(?=被|给|让|也被|又被|都被|掉|摔|落|倒|滑|砸|塌|烧)")
HOUSEHOLD = r"我家|我们家|俺家|他家|她家|谁家|自家|家里的|我的|我们的|俺的|他的|她的"
ELEVATOR = r"电梯|电提|电悌|电体|升降梯|轿厢"
BLOOD = r"血(?![压糖脂管型液])"
SMOKE = r"(?<![油手香抽吸])烟(?![味头民酒花草感囱])"
GAS_WORD = r"煤气|燃气|天然气|液化气|瓦斯|煤汽|燃汽|气罐|钢瓶|燃气表|燃气管|燃气灶|煤气灶"
FUEL = r"烧炭|炭火|炭盆|火盆|烤火|煤炉|炉子|蜂窝煤|煤球|燃气热水器|煤气热水器"
SYMPTOM = r"头晕|头(?:好|很|有点|都|发)晕|头疼|头痛|恶心|想吐|迷糊|站不稳|没力气|想睡|叫不醒"
HOLD = r"拿|拿着|举着|握着|提着|拎着|抄起|抄着|抡起|抡着|挥着|挥舞着?|揣着|带着|手里有|手里拿着|手上拿着"
STRONG_WEAPON = r"(?:西瓜|水果|菜|剁骨|砍|尖|长|杀猪)?(?<!玩具)(?<!玩具的)(?<![木料])刀(?![片具叉削疤口])|刀子|斧子|斧头|(?<![水气玩温])枪(?![^，,。]{0,8}测)|匕首|砍刀"
WEAK_WEAPON = r"棍|棒|铁锹|铁锨|钢管|铁管|锤|扳手|剪刀|凳子|椅子|砖|酒瓶|电棍|锄头|镰刀|铁链|石头"
VIOLENCE = (r"砸|打(?!扫|牌|枣|球|卡|电话|麻将|招呼)|砍|追|捅|抡|挥|伤|威胁|弄死|杀|血|乱(?:挥|砍|打|砸|舞|抡)|"
            r"冲着|往.{0,3}(?:身上|头上|脸上)|救命|报警")
STUCK = r"卡住|卡在|卡了|停在|停了|不动|掉了|掉到|往下掉|打不开|开不了|出不来|坏了|淹|进水|泡在|锁着|锁住|反锁|关着"
OCCUPIED = (r"(?:里面|里头|里)(?:还)?(?:有|坐着|躺着)(?:人|个|孩子|小孩|娃|老人|我)|(?:里面|里头)的人|"
            rf"(?:{PERSON})(?:还|[一二两三四五六七八九几\d]+个人|[^，,。]{{0,5}})在(?:(?:{ELEVATOR})里(?:面|头)?|里(?:面|头))")

# Dangers that, named in a message, mean "now" unless the message says otherwise.
DANGER = {
    # Fire. "打不着火" (a dead gas stove) is not a fire.
    "fire": (r"(?<![打点不])(?<!不是)(?<!没有)着火|火(?:还|都|仍)?(?:没|未)(?:灭|扑灭|熄|被扑灭)|着过(?:一次|一回|两次|几次)?火|起过(?:一次|一回)?火|救火|着(?:了)?大火|起大火|大火(?:烧|着|蔓延)|着了火|起火|失火|火灾了|发生火灾|烧起来|烧了起来|烧着了|点着了|着起来|燃起来|在燃|自燃|"
             r"(?<![发高])烧得(?!慌|厉害|很|好|不|只剩|剩|精光|黑|焦|面目)|噼里啪啦.{0,4}烧|火烧(?!云)|冒火|(?:冒|有|起|见)明火|"
             r"在烧(?!烤|水|饭|香|纸|菜|开|炭|煤|炉|火锅|垃圾|树叶|秸秆|荒|东西|蜂窝煤)|"
             r"(?:车棚|房子|屋子?|厨房|仓库|车子?|楼道|店|柜子|电线|电表|电箱|配电箱|变压器)烧(?:了|着|起)(?!个|一个|洞)|"
             r"火苗(?!小|太小|很小|不旺|弱|特别小|[^，,。]{0,4}(?:只有|一点|小|不大|不够))|火光|火星子?(?:往|四|直|乱)|火舌|火海|(?:到处|全|满屋)(?:都)?是火|一片火|火(?:很|好|太|老|特别)大|火势|"
             r"火越(?:烧越|来越)大|火(?:从|往|还在往).{0,8}(?:窜|蹿|喷|冒|出来)|(?:大)?火(?:已经|都)?烧到|"
             r"火.{0,8}(?:灭|扑|浇)不(?:灭|掉|了)|(?:灭|扑|浇)不(?:灭|掉|了).{0,4}火|"
             r"爆炸|(?:电瓶|电池|电动车|锅炉|煤气罐|气罐|高压锅|充电宝|配电|变压器|厨房|锅)(?:子)?.{0,4}(?:炸了|爆了)|"
             r"着(?:活|伙|货)(?:了|啦|咯|啊)|有火.{0,6}(?:快|救|跑)|"
             r"🔥.{0,12}(?:快|救|来人|号楼|栋|单元)|(?:快|救|来人).{0,12}🔥|"
             r"(?:窗帘|被子|床单|沙发|衣服|头发|柜子|房子|电线|电表|电箱|插座|插线板|厨房|后厨|屋里|屋头|仓库|车棚|车|车子|"
             r"煤气罐|气罐|液化气罐|钢瓶)(?:里)?.{0,2}着了"),
    # Smoke. Set aside when the message (for smoke coming out: its clause) is
    # about a barbecue, cooking fumes, cigarettes or paper burnt on purpose (see _dangers).
    "smoke_out": rf"(?<![油手囱])冒烟|冒黑烟|冒白烟|(?<!囱)冒出.{{0,4}}{SMOKE}|(?<!囱)(?:好多|很多|大量|滚滚)?黑烟|浓烟",
    "smoke": (rf"全是{SMOKE}|都是{SMOKE}|好多{SMOKE}|一屋子{SMOKE}|满屋(?:子)?(?:都是)?{SMOKE}|(?:好大|很大|老大)的{SMOKE}|"
              rf"{SMOKE}(?:很|好|太|老|特别)大|{SMOKE}.{{0,4}}(?:往上|往里|往外|窜|灌|呛得)|{SMOKE}(?:太|好|很|老|特别|真)?呛|"
              rf"呛得.{{0,4}}(?:睁不开|喘不|咳|看不清)|(?:好|很|老|太)?浓的{SMOKE}|{SMOKE}(?:好|很|太|老)?浓|{SMOKE}.{{0,6}}看不(?:清|见)(?:路|人|楼梯)"),
    # Gas and carbon monoxide. 没气 is a homophone residents type for 煤气.
    "gas": (rf"煤气味|燃气味|天然气味|液化气味|瓦斯味|(?:煤|燃)汽|臭鸡蛋味|(?:{GAS_WORD}).{{0,6}}(?:泄漏|泄露|漏了|味|闻)|"
            rf"(?:煤气|燃气|管道)漏气|(?:{GAS_WORD})(?:管道|管子|管)?(?:被)?.{{0,6}}(?:挖|铲|撞|弄|碰|压|砸)(?:断|破|坏|裂)|"
            rf"(?:{GAS_WORD})(?:管道|管子|管)(?:被.{{0,4}})?(?:破|断|裂|爆)了?|漏(?:煤气|燃气|天然气|液化气)|"
            r"(?:煤气|燃气|天然气|液化气|瓦斯)味?(?:好|很|太|老|特别|超|真)(?:大|重|浓|冲|呛)|像(?:是)?(?:煤气|燃气|天然气|液化气)|"
            r"往外(?:冒|喷|漏)气|(?:关了?|关上|关掉)(?:了)?(?:阀门|总阀|灶|燃气|煤气).{0,6}(?:还|仍|也)(?:有|是)?.{0,4}味|"
            r"(?:阀门|灶|燃气|煤气)关了.{0,4}(?:还|仍)(?:有|是).{0,4}味|(?<![胎球车])(?<!暖气)漏气(?:了|啦|呀|啊)|"
            rf"(?:{GAS_WORD})[^，,。！!？?]{{0,20}}(?:漏(?![水雨电洞])|喷气|冒气|冒白气|嘶嘶|呲呲|咝咝|噗噗|往外冒|往外喷|"
            r"(?:管|胶管|软管)(?:子)?(?:脱了|脱落|松了|掉了))|"
            r"闻到.{0,4}(?:煤气|燃气|天然气|液化气)|闻着像.{0,2}(?:煤气|燃气)|一股子?(?:煤气|燃气|天然气|液化气)|"
            r"没气味(?:好|很|太|老|特别|超|真)?(?:重|大|浓|冲|呛)|(?:燃气|煤气|天然气|可燃气体)报警器.{0,6}(?:响|叫|报警|鸣|闪红)|一氧化碳|煤气中毒|烧炭|"
            r"(?:烧炭|炭火|炭盆|火盆|烤火|煤炉|炉子|蜂窝煤|煤球|热水器|煤气|燃气).{0,14}(?:头晕|头(?:好|很|有点|都|发)晕|头疼|头痛|恶心|想吐|晕乎|站不稳|没力气)"),
    # Someone collapsed, unconscious or very ill now.
    "collapsed": (rf"晕倒|昏倒|晕过去|昏过去|晕在|昏在|(?:晕|昏|倒|跌)(?:咗|左|低)|(?:昏|晕)起(?:了|咯)|爬唔起|起唔(?:到|身)|"
                  rf"(?:{PERSON})[^，,。\s]{{0,4}}(?:摔|跌)倒|(?:摔|跌)倒(?:了)?.{{0,6}}(?:起不来|爬不起|没反应|流血|不动)|"
                  r"胸口(?:好|很|特别|剧|非常)?(?:疼|痛|闷).{0,8}(?:汗|倒|喘|说不出|晕|白|紫)|(?:胸|心).{0,8}满头大汗|"
                  r"(?:叫|喊|敲)(?:了)?(?:门)?(?:他|她|人)?(?:半天|好久|几声)?(?:都|也|就是|就|还是|一直)?(?:不|没)(?:应|答应|回应|反应|开门)|"
                  r"卡住喉咙|卡(?:在)?喉咙|喘不了气|噎(?:住|着)|(?:脸|嘴唇).{0,4}(?:发紫|紫了|青了|发青)|"
                  r"在里(?:面|头).{0,6}(?:没动静|没声音|没反应|不出声)|倒地不起|倒地不动|倒地了|倒下了|倒下去|"
                  rf"突然倒(?:下|地|了|在)|倒在地上|(?:{PERSON})[^把，,。\s]{{0,4}}倒(?:在|地|下|了(?=$|[，,。!！?？\s啊呀]))(?!垃圾|水|掉|霉|闭|车|杯|进)|"
                  rf"(?:{PERSON})[^，,。\s]{{0,4}}(?:不动了|动不了|被?卡住了)|摔.{{0,8}}(?:动不了|起不来|疼得)|"
                  rf"(?:{PERSON})[^，,。\s]{{0,4}}(?:晕|昏)了|(?:躺|趴|倒|摔)(?:在|着)?.{{0,8}}(?:一动不动|不动了|没反应|叫不醒|拍不醒)|"
                  rf"(?:{PERSON}|躺|趴|倒|摔|下来|下去).{{0,8}}一动不动|昏迷|不省人事|没有呼吸|没呼吸|没意识|(?<!按)没反应了|冇反应|叫不醒|喊不醒|拍不醒|叫不应|喊不应|"
                  r"起不来了|站不起来|爬不起来|瘫在|喘不上气|喘不过(?:来)?气|呼吸困难|快不行了|不行了.{0,3}(?:快|救)|"
                  r"(?:脸色|嘴唇|脸)(?:都)?发?紫|噎住|窒息|心脏病(?:发|犯)|心梗|中风|捂着胸口|胸口(?:疼|痛)得|"
                  rf"(?:{PERSON})[^家，,。\s]{{0,4}}没气(?:儿)?了|不喘气|不呼吸了|没了呼吸|(?:躺|倒)(?:在)?地上.{{0,4}}起不来|"
                  r"说不(?:出|了)话|半边身子|嘴.{0,2}歪了|嘴歪|吐血|咳血|呼吸不(?:上来|过来|了)|喘不(?:上来|过来)|上不来气|透不过气|"
                  r"抽风|(?:高烧|发烧).{0,4}抽|惊厥|羊水破|要生了|快生了|早产|"
                  r"(?:里面|里头)还有人|还有人在(?:里面|里头)|有人.{0,4}没(?:出来|逃出来|救出来|下来|跑出来)|"
                  r"(?:叫|喊|敲|拍)(?:了)?(?:门|他|她|人)?[^，,。]{0,6}(?:反应|动静|回应)(?:都|也)?没有|好久没出来.{0,20}(?:没反应|反应都没有|不应|没动静)|抽搐|抽过去|抽起来了|口吐白沫|休克|心脏骤停|没心跳|心跳停"),
    # Someone injured, poisoned, burnt or electrocuted now.
    "injured": (rf"流{BLOOD}|出{BLOOD}|{BLOOD}流|流了.{{0,4}}{BLOOD}|头破{BLOOD}|(?:满|全|一|成)(?:身|脸|头|手|地)(?:上)?(?:都)?(?:是|系)?{BLOOD}|"
                rf"好多{BLOOD}|一地{BLOOD}|{BLOOD}止不住|{BLOOD}(?:哗哗|直流|一直|往外|喷)|见{BLOOD}了|头破了|磕破|划了.{{0,4}}口子|"
                rf"(?:{PERSON})[^，,。\s]{{0,4}}被.{{0,4}}砸(?:了|伤|到|中|倒)|"
                rf"(?:身|脸|头|手|腿|胳膊|地)上?(?:全|都)是{BLOOD}|全是{BLOOD}|被(?:狗|猫|蛇).{{0,4}}咬|(?:夹|压|砸|撞|摔)断|"
                r"受伤了|摔伤|摔断|砸伤|砸到(?:了)?(?:头|人|脑袋)|骨折|"
                r"(?:划|割|切|砍|咬|磕)(?:了|出|开|破)?.{0,4}口子|(?:腿|手|头|脸|胳膊|脖子)上?.{0,4}(?:好大|很大|一道|老大|大)的?口子|"
                r"被(?:狗|猫|蛇)(?:给)?咬|被.{0,3}烫(?:了|伤|到|得|起)|烫(?:得|出).{0,4}(?:泡|皮)|(?:(?<!椅子)(?<!凳子)(?<!桌子)(?<![椅凳桌床])腿|胳膊|(?<![把扶])手|脚|骨头)(?:都)?(?:摔)?断了|(?:人|孩子|小孩|老人|娃)被(?:车)?撞|"
                r"撞人|撞飞|被.{0,4}车(?:给)?(?:撞|压|碾|轧)(?!歪|坏|断|弯|凹|瘪|碎)|把(?:人|孩子|小孩|老人).{0,4}撞|咬伤|触电|被电(?:了|着|到|打)|电(?:到|着)了|烫伤|烧伤|被(?:开水|热水|油)烫|中毒|"
                r"(?:吃|喝|吞)(?:了|下)?.{0,6}(?:农药|老鼠药|耗子药|安眠药|敌敌畏|百草枯|消毒液|消毒水|漂白|洁厕灵|杀虫剂|除草剂|"
                r"洗洁精|汽油|煤油|一整瓶|整瓶)|"
                r"当糖吃|误食|误吞|吞了.{0,4}(?:硬币|电池|磁铁|纽扣)"),
    # Someone trapped now: elevator, car, room, rubble. "我的车被困在车位里" is parking.
    "trapped": (rf"(?:{ELEVATOR}).{{0,6}}(?:下坠|坠落|急坠|溜梯|冲顶|蹲底|往下掉|掉了一截|掉下去)|车(?:里|内)出不来|被?(?:反)?锁(?:在)?车里|"
                r"(?:头|脑袋|腿|手|脚|胳膊).{0,2}卡(?:在|进|住)?.{0,8}(?:栏杆|护栏|防盗窗|缝|里|中间|出不来|拔不出)|(?:{ELEVATOR}).{{0,4}}关人|关人了|"
                r"夹(?:住|着)(?:了)?(?:人|孩子|小孩|老人|手|腿|头|脚)|把(?:人|孩子|小孩|老人).{0,4}夹(?:住|着)|"
                rf"被困|困人|困了(?:个|一个|两个|几个|\d+个)?人|困住了|(?:{ELEVATOR}).{{0,10}}还没(?:出来|救出来|弄出来)|困住(?:了)?人|困着人|关住(?:了)?人|关着人|困在|困(?:{ELEVATOR})|"
                rf"(?:关|卡|困)(?:在)?(?:{ELEVATOR})里|(?:关|卡|困)在(?:{ELEVATOR})|"
                rf"(?:{PERSON})[^。]{{0,10}}(?:天台|楼顶|屋顶|房顶)上?[^，,。]{{0,2}}(?:下不去|下不来|出不去|回不去)|(?:关|卡|困|锁)在.{{0,10}}(?:{ELEVATOR})里|(?:{ELEVATOR})里出不来|关在里面|卡在里面|锁在车里|"
                rf"(?:我|人|孩子|小孩|老人|有人)被?(?:反)?锁在.{{0,8}}里|"
                rf"(?:孩子|小孩|娃|老人|老太太|我|人)[^车]{{0,6}}(?:锁|关)在(?!门外|外面|外头|外边)|"
                rf"(?:孩子|小孩|娃|老人|老太太|婆婆|奶奶|爷爷).{{0,6}}反锁|"
                rf"(?:里面|里头|里)(?:还)?(?:关着|锁着|困着)(?:人|个|一|两|三|几|孩子|小孩|娃|老人|我)|半个身子|"
                rf"(?:{ELEVATOR}|车子?)[^。]{{0,14}}(?:{STUCK})[^。]{{0,14}}(?:{OCCUPIED})|"
                rf"(?:{ELEVATOR}|车子?)[^。]{{0,6}}(?:{OCCUPIED})[^。]{{0,14}}(?:{STUCK})|"
                rf"(?:{PERSON})[^，,。]{{0,5}}在(?:{ELEVATOR})里(?:面|头)?[^。]{{0,14}}(?:{STUCK}|出不去|下不去)|"
                rf"(?:头|腿|手|脚|孩子|小孩|娃|人).{{0,4}}卡在|(?:爬|钻|掉)进.{{0,6}}(?:冰柜|洗衣机|柜子|箱子|井|管道|缝)|"
                rf"(?:人|工人|孩子|小孩|老人).{{0,6}}(?:埋|压)在|(?:{PERSON})[^，,。]{{0,6}}被(?:埋|压)(?:住|在)|"
                rf"把(?:{PERSON}).{{0,3}}压住|压住了(?:{PERSON})|埋在里面"),
    # Someone shut in who cannot get out; not when a car or a door is only blocked (BLOCKED).
    "shut_in": (rf"(?:{PERSON})[^车]{{0,10}}出不来|(?:{PERSON})[^车]{{0,10}}(?:里面|里头|屋里|家里|房间|厕所|卫生间|里屋)"
                r"[^车]{0,4}出不去"),
    # A fight with weapons, or a weapon held against people.
    "weapons": (rf"持(?:刀|械|棍|棒|枪)|打伤|拼刀|动刀子|亮刀|掏(?:出)?(?:刀|匕首|枪)|砍人|砍伤|乱砍|动刀|捅人|捅伤|捅了|被捅|捅死|杀人|要杀|弄死|匕首|挥刀|打群架|械斗|抢劫|开枪|"
                rf"(?:{HOLD}|用)(?:把|一把|根|个|了)?.{{0,3}}(?:{STRONG_WEAPON})|砍起来|(?:有|带着?)(?:把|一把)?(?<![水气玩])枪(?!战|手)|(?:带|有)(?:着)?刀(?![片具叉疤口])|抄家伙|有家伙|"
                rf"(?:拿|带)着?家伙|追着.{{0,6}}(?:砍|打|捅)|打起来了.{{0,8}}(?:刀|棍|砖|酒瓶)|砸人|往人.{{0,4}}砸|砸.{{0,3}}头上|"
                rf"(?:用|拿|拿着|抡|举着|{HOLD})(?:把|一把|根|个|了)?.{{0,3}}(?:{WEAK_WEAPON}).{{0,12}}(?:{VIOLENCE})|"
                rf"(?:打架|打起来|动手|斗殴|互殴|围殴|殴打|{VIOLENCE})[^。]{{0,12}}(?:{HOLD})(?:把|一把|根|个|了)?.{{0,3}}(?:{WEAK_WEAPON})|"
                r"动了?刀"),
    # Someone about to jump. 跳舞, 跳绳, 广场舞 are not.
    "jump": (r"跳楼(?!价|大甩卖)|(?:要|想|说要|准备|打算)(?:从.{0,6})?跳(?!舞|绳|广场|操|远|高|槽|蚤|跳|皮|房子|水)|要往下跳|往下跳|跳下去|"
             r"别跳(?!舞|了舞)|要跳落|跳落(?:嚟|来)|(?:爬|翻)(?:上|到)了?.{0,4}(?:楼顶|天台|窗台|屋顶|房顶|水塔)|"
             r"翻(?:过|出)了?(?:阳台|天台|楼顶|桥|窗户|窗)?(?:的)?(?:栏杆|护栏|窗户|窗外|阳台)(?!进|去|到|过来)|爬出窗外|"
             r"(?:站|坐|蹲|挂|趴|爬)在.{0,6}(?:楼顶|天台|窗台|屋顶|房顶|水塔|外沿|女儿墙|栏杆外|护栏外|窗外|窗户外|阳台外|围墙上)|"
             r"(?:楼顶|天台|顶楼|屋顶|房顶|阳台|窗台|桥)[^。]{0,10}(?:站|坐|蹲)在(?:最)?(?:边边|边沿|边上)(?!收|干活|晒|施工|装|修|玩)|"
             r"(?:站|坐|蹲)在(?:最)?(?:边边|边沿)|(?:楼顶|天台|窗台|屋顶|房顶)(?:上|边上)?(?:有个人|有人)?(?:站着|坐着|蹲着)|"
             r"(?:栏杆|护栏)外(?:面|边)?(?:站|坐)|(?:天台|楼顶)边上(?![^，,。\s]{0,4}(?:晾|晒|收|干活|施工|装|修|玩))|跨出去|(?:腿|脚)(?:都)?(?:伸|跨|在)(?:出去|外面|外头)|"
             r"(?:窗户|窗|阳台|楼顶|天台|栏杆|护栏)(?:外面|外边|外头|外沿)(?:上)?(?:站着|坐着|蹲着|挂着|趴着)|"
             r"(?:站|坐|蹲|爬|挂|骑)在.{0,6}(?:栏杆上|护栏上|围栏上|窗户上|窗沿|窗框|空调外机|屋檐)|爬出窗户|"
             r"(?:楼顶|天台|顶楼)[^。]{0,8}(?:在|走到|到了)(?:最)?边(?:上|沿|边|缘)(?!收|干活|晒|施工|装|修|玩)|(?:楼顶|天台|顶楼)边缘|探出(?:窗外|窗户|阳台)|"
             r"(?:身子|身体).{0,4}(?:探出|伸出|在窗外|出窗)|(?:有人|人)跳下来了|(?:楼顶|天台).{0,6}(?:哭|不下来|徘徊)|"
             r"(?:楼顶|天台|窗台|桥上|河边).{0,12}(?:再见|告别|遗言)|寻死|活不下去|轻生|自杀|寻短见|割腕|上吊|服毒|喝药了|不想活|不活了|活着没意思|活够了|想不开|遗书"),
    "water": (rf"溺水|沉底|沉到水底|不会游泳|跳(?:河|江|湖|海|水库)|(?:孩子|小孩|人|老人|娃)[^。]{{0,10}}(?:掉|摔|跌)(?:下去|进去)了|掉进水里|掉水里|掉河里|掉进河|落水|淹着了|沉下去|扑腾|脸朝下.{{0,4}}水|(?:趴|漂)在.{{0,2}}水里|漂着.{{0,3}}(?:人|孩子|小孩)|"
              rf"(?:水里|水中|河里|池里|湖里).{{0,8}}没(?:上来|冒头)|头都(?:看不见|没了)|"
              rf"(?:{PERSON})[^，,。\s]{{0,8}}(?:掉|落|跌|摔|滑|栽)(?:进|到|入|下)?了?.{{0,5}}(?:河|湖|池|塘|水里|水中|江里|海里|井)"),
    "collapse": (r"坍塌|倒塌|(?:房子|楼|墙|阳台|房顶|[顶板棚房台桥])塌了|要塌|往下塌|在塌|掉下来砸|塌下来|楼在晃|房子在晃|楼在摇|"
                 r"(?:掉|塌|砸)下来.{0,10}(?:下面|底下)(?:还)?有人|要掉下来.{0,16}(?:下面|底下)(?:还|全)?(?:有|是)人"),
    "fall": (r"从窗户掉|从(?:楼上|楼顶|阳台|窗户|窗台|\d+楼|[一二三四五六七八九十]+楼)(?:上)?(?:摔|掉|跌|坠)|坠楼|(?:孩子|小孩|人|老人).{0,4}掉下去|悬在窗外|挂在窗外|挂在阳台外|"
             r"(?:有人|孩子|小孩|娃|老人|工人|师傅|大爷|阿姨|老太太)[^，,。\s]{0,8}(?:掉|摔|滚|跌)(?:了)?下(?:来|去)"),
    # Asking for the fire brigade, an ambulance or the police now.
    "call": r"(?:快|赶紧|马上|帮忙|帮我)(?:叫|打|喊|报)(?:个|一下)?(?:消防|119|救护车|120|110|警察|急救)",
    # Someone else calls for help. "救命" alone is not a danger: "救命啊 楼上装修吵死了".
    "help": r"(?:喊|叫|呼|在喊)救命|呼救|求救|救人啊|快救人|救救(?:我|他|她|孩子|我们)",
}
# More ways residents describe the same dangers (from emergency_long_dev.csv's error analysis).
DANGER.update({
    "stroke": (r"舌头发硬|说话(?:含糊|含含糊糊|不清楚?|不利索|大舌头)|口齿不清|一边脸(?:歪|麻)|"
               r"(?:左|右)边?的?(?:手脚|身子|胳膊|腿|半边)(?:都)?(?:动不了|没劲|不听使唤|发麻)"),
    "poison": (r"(?:药|药片)[^。]{0,12}(?:当成|当作)[^。]{0,8}吃|吃了(?:好几|一大把|一把|半瓶|一整瓶|很多)[片粒]?[^。]{0,6}药|"
               r"吃了[^。]{0,10}(?:蘑菇|野菜|河豚)[^。]{0,20}(?:吐|晕|抽|看见|幻觉|拉)|"
               r"站不稳.{0,8}(?:冷汗|晕|心慌)|心慌.{0,6}(?:头晕|站不稳|冷汗)"),
    "wound": (rf"冒{BLOOD}|(?:切|割|划)得(?:好|很|太|特别)?深|流紧{BLOOD}|(?:{PERSON})[^，,。]{{0,4}}被.{{0,6}}(?:狗|猫|蛇).{{0,4}}咬"),
    "shock": r"电倒|被电(?:倒|晕)|电晕|(?:触|被)电.{0,10}(?:躺|倒|不动)",
    "unconscious": (r"一头栽|栽倒|栽地上|栽在地上|(?:喊|叫|拍|推|摇)(?:他|她|佢)?(?:[喊叫拍推摇](?:他|她|佢)?)?(?:都|也)?"
                    r"(?:不动|没反应|不醒|唔应)|呼吸(?:声)?(?:很怪|不对劲|很弱|微弱|呼噜呼噜)|突然抽筋|成个人硬|"
                    r"(?:微弱|很弱)的?(?:声音|呼救|喊)|迷迷糊糊.{0,10}(?:栽|倒|晕|叫不醒)"),
    "crushed": r"把.{0,10}(?:人|孩子|老人|小孩).{0,3}压(?:住|在)",
    "giving_way": (r"(?:围墙|墙体|阳台|房顶|雨棚|(?<!围)墙)倒了|裂缝.{0,10}(?:变宽|越来越大|在变大|在裂|变大)|"
                   r"墙.{0,8}(?:吱吱响|嘎嘎响|往下掉灰)"),
    "farewell": r"(?<![得])想死|(?:朋友圈|微信).{0,10}(?:再见|告别|遗言)|说了?再见了",
    "missing_child": (r"(?:水面|水上|池子里|河里)(?:上)?漂着.{0,6}(?:帽子|鞋|衣服)|"
                      r"(?:水池|池子|河|湖|塘)边.{0,12}(?:没看见人|不见了|找不到人|没看到人)"),
    "fire_more": rf"(?:杂物|纸箱|垃圾堆|电动车|电瓶车|东西)(?:也)?着了|{SMOKE}.{{0,8}}(?:往上|往里|往外)冒",
    "fumes": r"(?:炉子|煤炉|炭|火盆).{0,16}(?:迷糊|迷迷糊糊|栽)",
    # Carbon monoxide: a stove, brazier or water heater and the symptoms, in either order and
    # across a sentence ("开了个炭盆烤火。刚才我婆婆说头疼得厉害"); a heating complaint around it
    # does not make it one (the gas kind's exception for 暖气 does not apply).
    "carbon_monoxide": (rf"(?:{FUEL}).{{0,40}}(?:{SYMPTOM})|(?:{SYMPTOM}).{{0,40}}(?:{FUEL})"),
    "trapped_more": r"困咗|困左",  # Cantonese: 電梯困咗人
})
# Latin-letter messages typed in pinyin ("dian ti kun ren le"): the clearest danger words.
PINYIN = r"zhaohuo|qihuo|shihuo|kunren|beikunle|xielou|louqi|meiqiwei|ranqiwei|yundao|hundao|hunmi|tiaolou|kanren|liuxue|chudian|nishui"

# Idioms that borrow danger words; blanked before anything else is looked at.
IDIOM = (r"(?:冷|热|累|饿|困|吵|烦|气|笑|急|渴|晒|闷|臭|熏)(?:得|死)?(?:我|人)?(?:都)?(?:快|要)?不行了|"
         r"(?:闷|热|吵|压|累|笑|气|憋)得(?:我|人)?(?:都)?(?:快)?喘不(?:上|过来|过)气|气(?:得)?(?:我)?(?:快)?(?:晕|昏)(?:倒|过去)?了?|"
         r"(?:笑|吓)(?:得)?(?:我)?(?:快)?晕|气得(?:我)?说不出话|火烧眉毛|火烧火燎|烟熏火燎|心急火燎|要命|"
         r"救命啊?(?=.{0,6}(?:吵|臭|烦|热|冷))|"
         r"(?:吵|气|烦|闹)(?:得|疯|死)(?:了)?(?:我|人)?[^，,。]{0,6}(?:想跳楼|要跳楼|不想活了?|吐血)|"
         r"(?:睡觉|睡大觉|打呼|呼噜).{0,6}(?:叫|喊)(?:都)?(?:叫|喊)不醒")
# The event is over: past-time words, or an ending (judged for the clause of each danger, and the message).
PAST = (r"上学期|上个学期|上半年|几个月前|半年前|\d{1,2}月\d{1,2}[日号]|当天|昨天|昨晚|昨儿|前天|前晚|前几天|前阵子|前段时间|前些天|大前天|上周|上礼拜|上星期|上个月|上月|上回|上次|之前|以前|"
        r"去年|那天|那次|那回|那事|那会儿?|那时候?|那阵子?|(?:国庆|春节|过年|中秋|五一|端午|元旦|年前)(?:那|的时候|期间)|当时|后来|事后|才出来|才被救|才弄出来|才救出来|(?:着|起|失|困|漏|烧|砸|摔|晕|坠|掉|夹|关|卡)过(?!去|来)")
# Nothing is in danger any more; applies to dangers in its clause and the clauses before it.
RESOLVED = (r"(?:就|都)出来了|没事(?=[。.!！，,]|$)|(?:扑|浇|踩|拍|给)灭了|灭掉了|火[^，,。不没]{0,3}灭了|已经(?:被)?.{0,4}(?:救出|救下|救上|送医|送到医院|送去医院|送医院|拉走|抬走|灭了|扑灭|灭掉|控制住|制服|抓走|带走|"
            r"抓了|处理了|处理好|修好|关好|关掉|没事|没味|散了|劝下|出来了|下来了|回家了|醒了|止住了)|"
            r"被.{0,6}(?:救出来|救下来|救上来|捞上来|灭了|扑灭|带走|抓走|劝下来|拉下来|抬走|送到?医院)|救出来了|终于出来|自己出来了|出来(?:后|以后|之后)|"
            r"休养|养伤|住院了|出院|说没漏|没漏气|(?:看|查|检查)(?:了|过)(?:一下)?(?:说)?是(?!煤气|燃气|天然气|漏)|没有漏|虚惊一场|是误报|误报|还好|幸好|好在|幸亏|没事了|"
            r"没有?人(?:受伤|被困|在里面|伤亡|掉下去|掉进去|摔着|摔下去)|去世|过世|病逝|没伤着|没伤到|没受伤|没砸到|没夹伤|(?:都|已经)过去|差点|差一点|险些|(?:味|味道|烟|火)(?:已经)?没了|修好了|拧紧了")
# What it turned out to be, said after the danger: "有人喊救命 原来是喝醉了在唱歌".
REVEAL = r"原来是|结果是|其实是"
# The danger goes on: an ending said earlier does not count ("原来是管道裂了 现在还在漏").
ONGOING = (r"还在(?:漏|冒|烧|喷|流|响|叫|喊|往外)|越来越(?:大|浓|重|多|厉害)|一直在(?:漏|冒|烧|喷|流)|"
           r"又(?:漏|冒|着|烧)起来")
# Only a risk: a danger after one of these words is hypothetical ("容易着火", "哪天真烧起来").
HAZARD = (r"新闻|报道|哪天|要是真|如果真|要是|如果|迟早|早晚|总有一天|会被|会(?:摔|烫|砸|掉|触电|着火|淹)|会不会|隐患|容易|会着火|会起火|可能会|万一|风险|安全吗|"
          r"怕.{0,6}(?:着火|起火|出事|中毒|漏|掉|砸|炸)|担心|以防|预防|防止|演练")
# What a fire would do, said of one that has not happened: "灭火器过期了 着火了用不了".
HYPOTHETICAL_AFTER = (r"(?:着火|起火|失火)了?.{0,3}(?:都|也|就|根本)?(?:用不了|用不上|跑不掉|跑都跑不掉|进不来|来不及|没法|看不见|找不到|出不去|逃不出去)|"
                      r"(?:掉|摔|跌)(?:下来|下去)就(?:是|会|得)|(?:困人|着火|起火|失火|漏气|被困|晕倒|摔倒)了?的时候")
# A habit, not an event now: "天天拿棍子捅天花板", "小孩天天玩游戏喊救命".
HABITUAL = r"天天|每天|每晚|每次|经常|老是|总是|成天|整天|(?<!一)动不动|三天两头|隔三差五|老有人|老在|常年|一到.{0,4}就"
# Words that put the danger in their clause in the present; they outweigh PAST and HABITUAL.
NOW = (r"(?<!到)现在|正在|还在|刚刚|刚才|一直|马上|快要|眼看|突然|此刻|这会|赶紧|又|"
       r"(?:昨天|昨晚|前天|之前|上午|早上)(?:晚上|早上)?就?(?:开始|起|到现在|以来)")
# Someone crying for help now; outweighs the past elsewhere in the message.
URGENT = r"快来|快点|快救|快打|快叫|快报警|报警|打110|打119|打120|叫救护车|速来|来人|救命|救救|求求|!!|！！|😱"
# Cries that outweigh even an ending ("救出来一个 里面还有人 快来").
URGENT_STRONG = r"快来|快救|快打|快叫|快报警|速来|来人啊|救救"
# A way out blocked by a car or clutter is parking or fire_safety, not someone shut in.
BLOCKED = r"堵|挡住|挡着|占着|停在门口|停得|停满|车(?:停|堵|挡)|停车|(?:被|让)车|挪车|门禁|进不去"
# Fires lit on purpose are a nuisance (sanitation, other), not an emergency, unless a danger word says more.
NUISANCE_FIRE = (r"(?:垃圾|树叶|落叶|秸秆|杂草|纸钱)[^，,。]{0,10}(?:直接|就地)烧|就地烧|露天焚烧|焚烧|烧(?:纸|纸钱|树叶|落叶|秸秆|荒|垃圾|烤|香|艾草|蚊香|炭烤)|烧烤|油烟|烟熏|抽烟|吸烟|烟头|烟囱|鞭炮|烟花|爆竹|放炮|"
                 r"火锅|烤肉|烤串|(?:有人|谁|人家|邻居|在)[^，,。\s]{0,6}烧(?:电线|轮胎|塑料|废品|旧家具|东西)")
# Shut in at home because the elevator is broken: an elevator complaint ("电梯停运了 老人被困在家里下不了楼").
STUCK_HOME = rf"(?:{ELEVATOR}).*(?:(?:下|上)不(?:了|去|来)楼|出不了门|爬(?:不动)?楼)|(?:(?:下|上)不(?:了|去|来)楼|出不了门).*(?:{ELEVATOR})"
# A smoke alarm or a sign with nothing burning: "烟感一直在响 也没看到有烟".
NOTHING_THERE = r"没(?:看到|看见|闻到|发现|有)有?(?:烟|火|明火|味|人)"
# Heating: "暖气阀门在喷气" is not gas.
HEATING = r"暖气|暖器|散热器|地暖"
# Sewers smell of rotten eggs too: "下水井口一股子臭鸡蛋味" is sewage, not gas.
SEWER = r"下水|化粪池|污水|厕所|垃圾|粪|井口|排水|阴沟"

_DANGERS = {kind: re.compile(p) for kind, p in DANGER.items()}
_ANY_DANGER = re.compile("|".join(f"(?:{p})" for p in DANGER.values()))
_IDIOM = re.compile(IDIOM)
_PINYIN = re.compile(PINYIN)
_LATIN = re.compile(r"[^a-z]+")
_PAST = re.compile(PAST)
_RESOLVED = re.compile(RESOLVED)
_HAZARD = re.compile(HAZARD)
_HABITUAL = re.compile(HABITUAL)
_HYPOTHETICAL_AFTER = re.compile(HYPOTHETICAL_AFTER)
# Endings that end a fire, smoke, gas or a collapse itself; any other ending ("人都跑出来了",
# "还好没人受伤") says only that people got away, and the danger may go on.
_PUT_OUT = re.compile(r"灭|控制住|制服|抓|带走|处理|修好|关好|关掉|没味|散了|止住|说没漏|没漏|没有漏|看|查|虚惊|误报|没事了|过去|差点|差一点|险些|没了|拧紧")
_REVEAL = re.compile(REVEAL)
_ONGOING = re.compile(ONGOING)
_NOW = re.compile(NOW)
_URGENT = re.compile(URGENT)
_URGENT_STRONG = re.compile(URGENT_STRONG)
_BLOCKED = re.compile(BLOCKED)
_NUISANCE_FIRE = re.compile(NUISANCE_FIRE)
_NOTHING_THERE = re.compile(NOTHING_THERE)
_WONT_LIGHT = re.compile(r"(?:打|点)不着(?:火)?")  # a stove that will not light: utilities
# Smoke that blinds, chokes or traps is a danger whoever lit the fire ("烧东西…全是烟…出不去").
_SEVERE_SMOKE = re.compile(r"看不(?:清|见)|出不去|跑不出|逃不出|喘不|晕")
_SETTLED_RISK = re.compile(r"隐患|万一|迟早|早晚会|哪天|会不会|容易|怕.{0,6}(?:出事|掉|砸|着火|中毒)")
_HEATING = re.compile(HEATING)
_SEWER = re.compile(SEWER)
_STUCK_HOME = re.compile(STUCK_HOME)
_GAS_WORD = re.compile(GAS_WORD)
_PERSON = re.compile(PERSON)
_ANIMAL = re.compile(ANIMAL)
_THING = re.compile(THING)
_HOUSEHOLD = re.compile(HOUSEHOLD)
_AGENT = re.compile(rf"[被让给叫遭](?:一|这|那)?(?:条|只|辆|个)?(?:大|小|野|流浪|别)?(?:{ANIMAL}|车|人|{PERSON})")
_CLAUSE = re.compile(r"[^，,。.!！?？;；:：\s~～…]+")
# Kinds that are emergencies only when a person is in danger (a fire is one whoever is inside).
_PEOPLE_ONLY = {"carbon_monoxide", "collapsed", "injured", "trapped", "shut_in", "water", "fall", "stroke", "poison", "wound",
                "shock", "unconscious", "crushed"}  # see _subject
_HYPOTHETICAL, _RESOLVED_, _NOW_, _PAST_, _NEUTRAL = "hypothetical", "resolved", "now", "past", "neutral"


def fold(text: str) -> str:
    """The text as the rules read it: simplified, half-width, 著 → 着, idioms blanked."""
    return _IDIOM.sub("　", normalise(text).replace("著", "着"))


def _last(pattern: re.Pattern[str], text: str) -> int:
    found = [m.start() for m in pattern.finditer(text)]
    return found[-1] if found else -1


def _subject(text: str, match: re.Match[str]) -> str:
    """Who the danger befalls: 'person'; 'animal_or_thing' when an animal or a
    thing is the subject right before it ("我家猫被困在…", "我的车被困…"); 'unclear'
    when one is mentioned earlier and no person after it. An agent ("被车撞",
    "被狗咬伤") is not a subject."""
    named = _PERSON.match(match.group(0))
    if named and not _HOUSEHOLD.match(match.group(0)) and not match.group(0)[named.end():].startswith("的"):
        return "person"  # the danger's own words name a person ("孩子被邻居家的大狗咬了"; not "我的手机")
    before = _HOUSEHOLD.sub("〇〇", text[:match.end()])
    subject = max(_last(_THING, before), _last(_ANIMAL, _AGENT.sub("〇", before)))
    if subject <= _last(_PERSON, _AGENT.sub("〇", before)):
        return "person"
    return "animal_or_thing" if match.start() - subject <= 4 else "unclear"


def _dangers(text: str) -> tuple[list[tuple[str, re.Match[str]]], bool]:
    """The danger matches that concern people now, and whether any match was
    set aside because it plainly concerns only an animal, a thing, a blocked
    car, a sewer or a nuisance. A danger whose subject is unclear is neither."""
    found, set_aside = [], False
    for kind, pattern in _DANGERS.items():
        for match in pattern.finditer(text):
            subject = _subject(text, match) if kind in _PEOPLE_ONLY else "person"
            if subject == "unclear":
                continue
            if ((kind == "shut_in" and _BLOCKED.search(text))
                    or (kind == "gas" and (_HEATING.search(text) or _SEWER.search(text)) and not _GAS_WORD.search(text))
                    or (kind == "smoke" and _NUISANCE_FIRE.search(text) and not _SEVERE_SMOKE.search(text))
                    or (kind == "fire" and match.group(0).startswith("火星") and _NUISANCE_FIRE.search(text))
                    or (kind == "smoke_out" and _NUISANCE_FIRE.search(_context(text, match)[2]))
                    or (kind == "trapped" and match.group(0).startswith("车") and _BLOCKED.search(text))
                    or (kind == "trapped" and _STUCK_HOME.search(text))
                    or subject == "animal_or_thing"):
                set_aside = True
                continue
            found.append((kind, match))
    return found, set_aside


def _context(text: str, match: re.Match[str]) -> tuple[int, int, str]:
    """The clause(s) the danger `match` lies in: start, end and text."""
    inside = [c for c in _CLAUSE.finditer(text) if c.start() < match.end() and match.start() < c.end()]
    lo, hi = (inside[0].start(), inside[-1].end()) if inside else (match.start(), match.end())
    return lo, hi, text[lo:hi]


def _status(text: str, kind: str, match: re.Match[str]) -> str:
    """How the danger `match` of `kind` stands in time, judged on the clause(s) it lies in.
    People who got out end a danger to people, not a fire or a gas leak ("我们全家已经跑出来了"
    beside a kitchen fire that still burns)."""
    lo, _, context = _context(text, match)
    endings = [r for r in _RESOLVED.finditer(text)
               if kind in _PEOPLE_ONLY or _PUT_OUT.search(r.group(0))]
    ended = (any(r.start() >= lo for r in endings)
             or any(r.start() >= match.end() for r in _REVEAL.finditer(text)))
    if ended and not _ONGOING.search(text):
        return _RESOLVED_
    if any(h.start() < match.end() - lo for h in _HAZARD.finditer(context)) or _HYPOTHETICAL_AFTER.search(context):
        return _HYPOTHETICAL
    if _NOW.search(context):
        return _NOW_
    if _PAST.search(context) or _HABITUAL.search(context):
        return _PAST_
    return _NEUTRAL


def assess(text: str) -> str | None:
    """'emergency' if the text names a danger happening now, 'not_now' if it
    names one that is over or only a risk, None if it names no danger."""
    raw = normalise(text)
    if _PINYIN.search(_LATIN.sub("", raw.lower())):
        return EMERGENCY
    text = fold(text)
    if not _ANY_DANGER.search(text):
        # Danger words only in idioms ("冷得我快不行了") or a fire lit on purpose: not now.
        return NOT_NOW if _IDIOM.search(raw) or _NUISANCE_FIRE.search(text) else None
    dangers, set_aside = _dangers(text)
    if not dangers:
        return NOT_NOW if set_aside else None
    clauses = list(_CLAUSE.finditer(text))
    statuses = {_status(text, kind, match) for kind, match in dangers}
    crying = any(_URGENT.search(c.group(0)) and not _PAST.search(c.group(0)) for c in clauses)
    if _NOW_ in statuses:
        return EMERGENCY
    if _NEUTRAL in statuses:
        # A past time said before the danger dates it ("上周三晚上 我妈在电梯里被困了40分钟");
        # one said after it is a remark ("我被困在电梯里 之前也困过一次").
        first = min(m.start() for _, m in dangers)
        # ...unless a now-word comes between ("昨天说过的杂物，现在出事了！杂物着了").
        dated = any(p.start() < first and not any(p.start() < n.start() < first for n in _NOW.finditer(text))
                    for p in _PAST.finditer(text))
        crying = crying or bool(re.search(r"[!！]{2,}", text[first:]))  # "窗户冒火了！！"
        return EMERGENCY if crying or not dated else NOT_NOW
    return EMERGENCY if _URGENT_STRONG.search(text) else NOT_NOW


def settled(text: str) -> bool:
    """For a message that names no danger: True when it says the event is over
    ("已经被保安灭了", "前几天…幸好被捞上来了"), a habit or only a risk, and
    nobody cries for help. A DIET `emergency` is then demoted."""
    text = fold(text)
    if _URGENT_STRONG.search(text):
        return False
    if _RESOLVED.search(text) or _NOTHING_THERE.search(text) or _WONT_LIGHT.search(text):
        return True
    if _URGENT.search(text) or _NOW.search(text.replace("又", "")):
        return False
    return bool(_PAST.search(text) or _HABITUAL.search(text) or _SETTLED_RISK.search(text))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class EmergencyGuard(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # promote_confidence: when no rule fires, an emergency the classifier
        # gives at least this confidence still goes first (unless the message
        # says the event is over or only a risk: `settled`). Chosen on the dev
        # sets; a false alarm costs one message, a miss a life.
        # possible_confidence: below promote_confidence but at least this, the danger is
        # uncertain: the message is flagged `emergency_possible`, the resident gets the
        # numbers to call first and the normal report flow carries on (no urgent ticket).
        return {"confidence": 0.99, "promote_confidence": 0.5, "possible_confidence": 0.1}

    def __init__(self, config: dict[str, Any]) -> None:
        self._confidence = float(config["confidence"])
        self._promote = float(config.get("promote_confidence", 1.1))
        self._possible = float(config.get("possible_confidence", 1.1))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyGuard:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                verdict = assess(text)
                if verdict is None:
                    confidence = self._emergency_confidence(message)
                    if settled(text):
                        verdict = NOT_NOW
                    elif confidence >= self._promote:
                        verdict = EMERGENCY
                    else:
                        # Not sure enough to page anyone: the classifier's emergency alone, below
                        # promote_confidence, does not file an urgent ticket ("就在那边" 0.37).
                        verdict = NOT_NOW
                        if confidence >= self._possible:
                            message.set("emergency_possible", True, add_to_output=True)
                self._apply(message, verdict)
        return messages

    @staticmethod
    def _emergency_confidence(message: Message) -> float:
        for entry in message.get(INTENT_RANKING_KEY) or []:
            if entry.get(INTENT_NAME_KEY) == EMERGENCY:
                return float(entry.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
        return 0.0

    def _apply(self, message: Message, verdict: str | None) -> None:
        ranking: list[dict[str, Any]] = list(message.get(INTENT_RANKING_KEY) or [])
        current = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if verdict == EMERGENCY and current != EMERGENCY:
            rest = [r for r in ranking if r.get(INTENT_NAME_KEY) != EMERGENCY]
            top = {INTENT_NAME_KEY: EMERGENCY, PREDICTED_CONFIDENCE_KEY: self._confidence}
            message.set(INTENT, top, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [top, *rest], add_to_output=True)
            message.set("emergency_rule", True, add_to_output=True)
        elif verdict == NOT_NOW and current == EMERGENCY:
            rest = [r for r in ranking if r.get(INTENT_NAME_KEY) != EMERGENCY]
            if rest:
                message.set(INTENT, rest[0], add_to_output=True)
                message.set(INTENT_RANKING_KEY, rest + [r for r in ranking if r not in rest], add_to_output=True)
                message.set("emergency_rule", False, add_to_output=True)
