"""Word lists and the template grammar of the synthetic corpus (see `pipeline.tools.corpus_gen`).

Every list is ordered from most to least frequent: the generator samples it with Zipf weights
(rank r has weight r**-0.8), which gives the character frequencies a Zipf-like tail while
keeping the vocabulary to about 800 CJK characters, so a tiny model can learn the grammar.
A `{name}` in a template is another slot; `topic_rules(topic)` assembles one topic's grammar.
"""

from __future__ import annotations


def words(text: str) -> list[str]:
    return text.split()


def phrases(text: str) -> list[str]:
    return text.split("|")


# ----------------------------------------------------------------------------------------------
# Slots shared by every topic (a topic may override any of them).
COMMON: dict[str, list[str]] = {
    "time": words(
        "今天 昨天 明天 最近 去年 今年 上午 下午 晚上 早上 周末 后来 当时 目前 近日 每天 平时 "
        "上个月 下个月 这几天 春节期间 国庆节期间 星期一 星期三 星期五 年底 年初 中午 前天 刚才"
    ),
    "adv": words(
        "已经 正在 终于 马上 一直 经常 也 还 都 又 再 突然 慢慢地 认真地 常常 很快 "
        "逐步 同时 首先 仍然 主动 及时 按时 悄悄地 再次 一起 特别 进一步"
    ),
    "adj": words(
        "重要 简单 困难 有趣 明显 普通 特别 严重 积极 稳定 复杂 清楚 安全 方便 新鲜 "
        "热闹 安静 漂亮 干净 便宜 精彩 难得 可靠 合理"
    ),
    "degree": words("很 非常 比较 十分 特别 相当 有点 越来越 格外 更加"),
    "feeling": words("高兴 满意 惊讶 感动 担心 放心 意外 骄傲 紧张 轻松 激动 好奇"),
    "conj_cause": words("因为 由于 考虑到 鉴于"),
    "quantity": words("一些 许多 几个 不少 大量的 两个 三个 一批 各种 部分 十几个 上百个"),
    "num": words(
        "1 2 3 5 10 20 12 8 15 30 100 50 200 25 4 6 7 9 40 60 300 500 1000 18 24 36 45 80 120 "
        "150 250 400 600 800 2000 3000 5000 11 13 14 16 17 19 21 22 23 35 65 75 90 99"
    ),
    "cnum": words("一 两 三 五 十 四 六 七 八 九 二十 三十 一百 几十 几百 上千"),
    "ord": words("一 二 三 四 五 六 七 八"),
    "year": words("2020 2021 2019 2022 2023 2018 2017 2024 2016 2015 2010 2008 2012 2014 2005 2000 1998 1990"),
    "month": words("1 2 3 4 5 6 7 8 9 10 11 12"),
    "day": words("1 2 3 5 8 10 12 15 18 20 21 22 25 26 28 30 6 9 11 16 19 23 27"),
    "hour": words("八 九 十 七 两 三 四 六 五 十一 十二"),
    "percent": words("十 二十 三十 五十 十五 五 四十 六十 八十 二十五 七十 九十"),
    "surname": words("王 李 张 刘 陈 杨 赵 黄 周 吴 徐 孙 胡 朱 高 林 何 郭 马 罗 梁 宋 郑 谢 韩 唐 冯 于 董 萧"),
    "given": words(
        "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀兰 霞 平 刚 桂英 建华 文 华 "
        "红 建国 小明 小红 海燕 晓东 志强 丽华 子轩 欣怡"
    ),
    "title_word": words("先生 女士 老师 教授 医生 同学 师傅 经理 主任 阿姨 大爷 记者"),
    "name": ["{surname}{given}", "{surname}{title_word}", "老{surname}", "小{surname}"],
    "date": ["{year}年{month}月{day}日", "{month}月{day}日", "{year}年{month}月", "{year}年"],
    "clock": ["上午{hour}点", "下午{hour}点", "晚上{hour}点", "早上{hour}点半", "中午十二点"],
    "amount": ["{num}{measure}", "{cnum}{measure}", "{quantity}"],
    "measure": words("个 名 次 项 家 件 份 种 批 台 本 位"),
    "listof": ["{obj}、{obj}和{obj}", "{obj}和{obj}", "{obj}、{obj}、{obj}以及{obj}"],
    # `vo` is a verb-object phrase; "|" marks where the perfective 了 goes (see `topic_rules`).
    "vo": ["{verb}|{obj}"],
    "clause": [
        "{subj}{adv}{vo}",
        "{subj}在{place}{vo_le}",
        "{obj}{degree}{adj}",
        "{subj}对{obj}{degree}{feeling}",
        "{subj}{time}要{vo}",
        "{place}的{obj}{degree}{adj}",
    ],
    "sentence": [
        "{time}，{subj}在{place}{vo_le}。",
        "{subj}{adv}{vo}。",
        "{subj}{time}在{place}{vo}，大家都觉得{degree}{adj}。",
        "{name}说：“{clause}。”",
        "{name}表示：“{clause}，{clause}。”",
        "{subj}为什么要在{place}{vo}？",
        "你知道{subj}{time}{verb}了什么吗？",
        "{subj}谈到了{listof}等话题。",
        "{date}，{subj}在{place}{vo}，共有{num}人参加。",
        "{subj}认为，{clause}，{conj_cause}{clause}。",
        "如果{clause}，{subj}就会{vo}。",
        "虽然{clause}，但是{clause}。",
        "{obj}的{attr}提高了百分之{percent}。",
        "第一，{clause}；第二，{clause}。",
        "{clock}，{name}{adv}在{place}{vo}。",
        "{subj}不仅{vo_le}，而且{vo_le}。",
        "{place}的{obj}{degree}{adj}，{subj}{degree}{feeling}。",
        "{clause}吗？{clause}。",
        "{subj}一边{vo}，一边{vo}。",
        "据{name}介绍，{clause}，{clause}。",
        "首先，{clause}；其次，{clause}；最后，{clause}。",
        "{subj}{time}{vo_le}没有？",
    ],
    "attr": words("效率 质量 数量 水平 速度 比例 价格 收入 规模 影响"),
    # Short titles for the `title` column.
    "headline": ["{place}{vo}", "关于{obj}的{obj}", "{subj}{vo}", "{obj}{degree}{adj}"],
}

# ----------------------------------------------------------------------------------------------
# Topics: each adds its own subjects, verb-object phrases, places and sentence forms (these
# come first, so they are the most frequent, followed by the common ones).
TOPICS: dict[str, dict[str, list[str]]] = {
    "news": {
        "subj": words(
            "市政府 有关部门 记者 公司 发言人 国务院 教育部 交通部门 气象台 警方 企业 银行 "
            "医院 学校 法院 委员会 代表团 专家 工作人员 市民 村民 志愿者 负责人 消费者 游客 "
            "当地居民 社区 研究机构 {name}"
        ),
        "verb": words(
            "宣布 发布 召开 举行 启动 完成 推进 加强 提出 通过 批准 公布 调查 签署 建设 部署 "
            "落实 开展 组织 参加 讨论 支持 改善 解决 介绍 关注 报道 提供"
        ),
        "vo": [
            "召开|{meeting}",
            "发布|{doc}",
            "举行|{event}",
            "启动|{project}",
            "公布|{doc}",
            "加强|{field}工作",
            "建设|{project}",
            "签署|{agreement}",
            "改善|{field}条件",
            "关注|{field}问题",
            "推进|{project}",
            "开展|{event}",
            "出台|{doc}",
            "参加|{event}",
            "完成|{project}",
            "讨论|{field}问题",
        ],
        "meeting": words("会议 新闻发布会 座谈会 工作会议 常务会议 听证会"),
        "event": words("活动 比赛 展览 志愿服务活动 文化节 招聘会 宣传活动"),
        "doc": words("通知 报告 政策 规定 方案 意见 公告 数据 统计数据"),
        "project": words("工程 项目 计划 改造工程 建设项目 试点工作"),
        "agreement": words("合作协议 框架协议 备忘录"),
        "field": words("交通 教育 环境 就业 安全 医疗 住房 养老 经济 文化"),
        "obj": words(
            "会议 政策 方案 计划 报告 项目 工程 通知 规定 措施 活动 合作协议 新闻发布会 "
            "交通 教育 服务 工作 调查 数据 问题 文件 市场 经济 就业 环境 安全 设施 比赛 展览"
        ),
        "place": words(
            "北京 上海 广州 深圳 成都 重庆 武汉 杭州 南京 西安 天津 长沙 郑州 济南 青岛 沈阳 "
            "哈尔滨 昆明 厦门 苏州 市中心 会议中心 人民广场 开发区 新区 县城 当地 全国各地"
        ),
        "media": words("新华社 本报 中新网 人民网 央视新闻 当地媒体 记者"),
        "sentence": [
            "据{media}报道，{subj}{time}{vo_le}。",
            "{date}，{subj}在{place}{vo}。",
            "{subj}{time}发布了关于{field}的{doc}，要求各地{adv}落实。",
            "记者从{subj}了解到，{place}{time}将{vo}。",
            "{place}的{field}投入比去年增长了百分之{percent}。",
        ],
    },
    "science": {
        "subj": words(
            "研究人员 科学家 研究团队 实验室 研究所 大学 工程师 天文学家 生物学家 物理学家 "
            "化学家 医学专家 学者 {name}教授 课题组 学生"
        ),
        "verb": words(
            "发现 证明 研究 观测 测量 分析 开发 设计 模拟 提出 验证 改进 制造 记录 计算 比较 解释 预测 培养 测试"
        ),
        "vo": [
            "发现|{finding}",
            "研究|{subject}",
            "观测|{celestial}",
            "开发|{tech}",
            "分析|{data}",
            "设计|{tech}",
            "测量|{subject}的{attr2}",
            "改进|{tech}",
            "培养|{cells}",
            "提出|{theory}",
            "验证|{theory}",
            "记录|{data}",
            "测试|{tech}",
            "模拟|{celestial}的运动",
        ],
        "finding": words("新物种 新材料 化合物 新病毒 规律 信号 化石 新矿物"),
        "subject": words("细胞 基因 蛋白质 病毒 材料 星系 细菌 分子"),
        "celestial": words("黑洞 星系 彗星 太阳 月球 火星 恒星 行星"),
        "tech": words("芯片 电池 算法 模型 机器人 疫苗 望远镜 火箭 卫星 传感器"),
        "data": words("数据 样本 结果 图像 信号"),
        "cells": words("细胞 细菌 菌株 干细胞"),
        "theory": words("理论 假说 方法 模型"),
        "attr2": words("温度 速度 质量 密度 结构 大小"),
        "obj": words(
            "新物种 黑洞 细胞 基因 蛋白质 新材料 电池 芯片 算法 模型 数据 卫星 火箭 望远镜 "
            "疫苗 化合物 机器人 信号 星系 病毒 细菌 能源 实验 理论 方法 样本 结构 规律"
        ),
        "place": words("实验室 太空 海底 南极 高原 沙漠 森林 大学 研究所 医院 野外 观测站 地下 河流中 月球上"),
        "sentence": [
            "{subj}通过{num}次实验测量了{subject}的{attr2}。",
            "这项研究表明，{subject}的{attr2}和{subject}有关。",
            "{subj}利用{tech}{vo_le}，结果发表在国际期刊上。",
            "实验中，{subject}的温度达到了{num}度。",
            "{subj}希望将来能用{tech}{vo}。",
        ],
    },
    "history": {
        "subj": words(
            "皇帝 将军 大臣 诗人 学者 商人 使者 僧人 百姓 农民 士兵 李白 杜甫 苏轼 王安石 "
            "孔子 孟子 司马迁 诸葛亮 曹操 刘备 秦始皇 唐太宗 郑和 张骞 玄奘"
        ),
        "verb": words("建立 统一 修建 迁都 编写 征服 颁布 改革 抵抗 出使 记载 治理 守卫 开辟 整理 创作 研究 推广"),
        "vo": [
            "修建|{building}",
            "颁布|{law}",
            "编写|{book}",
            "统一|{realm}",
            "创作|{art}",
            "治理|{river}",
            "出使|{region}",
            "迁都|{city}",
            "改革|{law}",
            "守卫|{region}",
            "整理|{book}",
            "推广|{crop}",
        ],
        "building": words("长城 运河 宫殿 寺庙 城墙 都城 道路 桥梁"),
        "law": words("法律 制度 政令 税法"),
        "book": words("史书 书籍 典籍 诗集 地图"),
        "realm": words("国家 文字 货币 度量衡 天下"),
        "art": words("诗歌 文章 画作 乐曲 书法"),
        "river": words("黄河 水患 河道"),
        "region": words("西域 边疆 海外 北方 南方"),
        "city": words("洛阳 长安 开封 南京 北京"),
        "crop": words("水稻 小麦 茶叶 棉花 丝绸"),
        "obj": words(
            "长城 运河 都城 宫殿 法律 制度 史书 寺庙 诗歌 文字 道路 丝绸之路 国家 军队 农田 水利 货币 书籍 城墙 边疆"
        ),
        "place": words("长安 洛阳 开封 南京 北京 西域 江南 中原 蜀地 边关 黄河流域 长江两岸 都城 宫中 民间"),
        "dynasty": words("秦朝 汉朝 唐朝 宋朝 元朝 明朝 清朝 三国时期 春秋时期 战国时期 隋朝 南北朝"),
        "time": words("当时 后来 那一年 多年以后 不久 此后 晚年 年轻时 同年 第二年"),
        "sentence": [
            "{dynasty}，{subj}在{place}{vo_le}。",
            "在{dynasty}，{subj}{vo_le}，这是{degree}{adj}的事情。",
            "据史书记载，{subj}{time}{vo}，{clause}。",
            "{subj}生活在{dynasty}，他一生{vo_le}。",
            "{dynasty}的{obj}对后来的{obj}影响{degree}大。",
        ],
        "headline": ["{dynasty}的{obj}", "{subj}与{obj}", "{place}的{obj}"],
    },
    "daily": {
        "subj": words(
            "我 你 他 她 我们 妈妈 爸爸 奶奶 爷爷 孩子 朋友 同学 邻居 姐姐 哥哥 弟弟 妹妹 老师 同事 大家 他们 {name}"
        ),
        "verb": words("吃 喝 买 做 洗 看 听 打扫 准备 带 等 找 喜欢 收拾 送 借 学习 种 骑 拿"),
        "vo": [
            "吃|{food}",
            "买|{thing}",
            "喝|{drink}",
            "看|{media}",
            "做|{food}",
            "买|{food}",
            "带|{thing}",
            "送|{thing}",
            "洗|{clothes}",
            "打扫|房间",
            "写|作业",
            "听|音乐",
            "找|{thing}",
            "借|{thing}",
            "骑|自行车",
            "收拾|{room}",
        ],
        "food": words("饭 面条 饺子 苹果 米饭 西瓜 蛋糕 鸡蛋 包子 青菜 鱼 水果 馒头 早饭 午饭 晚饭"),
        "drink": words("水 茶 牛奶 咖啡 果汁 豆浆"),
        "thing": words("书 手机 雨伞 礼物 花 报纸 电脑 鞋子 钥匙 玩具"),
        "media": words("电视 电影 新闻 小说 比赛 节目"),
        "clothes": words("衣服 袜子 床单 被子"),
        "room": words("房间 客厅 厨房 书包 桌子"),
        "obj": words(
            "早饭 午饭 晚饭 米饭 面条 饺子 苹果 西瓜 牛奶 咖啡 茶 衣服 书 电影 电视 手机 "
            "自行车 房间 作业 蛋糕 水果 鸡蛋 礼物 花 音乐 报纸 雨伞 包子 青菜 鱼"
        ),
        "place": words(
            "家里 厨房 超市 公园 学校 公司 菜市场 医院 饭店 图书馆 地铁站 商场 楼下 门口 "
            "客厅 操场 咖啡店 小区 车站 办公室"
        ),
        "sentence": [
            "{time}{subj}去{place}{vo_le}。",
            "{subj}{degree}喜欢{vo}。",
            "{subj}问{subj}：“你{time}想{verb}什么？”",
            "{place}的{food}{degree}{adj}，{subj}吃了{cnum}个。",
            "{subj}每天{clock}{vo}。",
            "{subj}{time}{degree}{feeling}，因为{subj}{vo_le}。",
        ],
    },
}


def topic_rules(topic: str) -> dict[str, list[str]]:
    """The complete grammar of one topic: common slots, overridden by the topic's own, with the
    topic's sentence forms first, and `vo_le` (a verb-object phrase with 了) derived from `vo`."""
    own = POETRY if topic == "poetry" else TOPICS[topic]
    rules = {**COMMON, **own}
    if topic != "poetry":
        rules["sentence"] = own["sentence"] + COMMON["sentence"]
    rules["vo_le"] = [phrase.replace("|", "了") for phrase in rules["vo"]]
    rules["vo"] = [phrase.replace("|", "") for phrase in rules["vo"]]
    return rules


# Poems and couplets have their own small grammar: lines of five or seven characters.
POETRY: dict[str, list[str]] = {
    "n2": words(
        "春风 明月 青山 白云 流水 孤舟 江南 故乡 秋雨 落花 夕阳 长河 寒山 小桥 烟雨 归雁 "
        "柳枝 梅花 星河 江水 山河 古道 西风 落日 清泉 松林 渔火 远山 春江 旧梦"
    ),
    "v1": words("照 入 过 绕 映 落 满 送 望 听 随 伴 对 别 渡"),
    "a2": words("萧萧 悠悠 茫茫 依依 潇潇 寂寂 青青 漫漫 冷冷 淡淡"),
    "line5": ["{n2}{v1}{n2}"],
    "line7": ["{a2}{n2}{v1}{n2}", "{n2}{v1}{n2}{a2}"],
    "title": ["{n2}", "{n2}{v1}{n2}", "忆{n2}", "送别", "春日", "秋思", "夜泊"],
    "headline": ["{title}"],
    "poem": [
        "《{title}》\n{line5}，{line5}。\n{line5}，{line5}。",
        "《{title}》\n{line7}，{line7}。\n{line7}，{line7}。",
        "上联：{line7}\n下联：{line7}\n横批：{n2}{n2}",
        "{line5}，{line5}。",
        "{line7}，{line7}。",
    ],
}

# ----------------------------------------------------------------------------------------------
# Damage material.
ENGLISH: dict[str, list[str]] = {
    "subj": phrases("The company|The government|Researchers|My friend|The team|Students|The city|She|He|They"),
    "verb": words("announced released studied visited built improved reported opened found discussed"),
    "obj": phrases("a new plan|the results|the museum|a bridge|the report|the project|a small park|the data"),
    "place": phrases("in Beijing|in Shanghai|last week|on Monday|this year|at the meeting|online|yesterday"),
    "sentence": [
        "{subj} {verb} {obj} {place}.",
        "Why did {subj} say that {subj} {verb} {obj}?",
        "{subj} {verb} {obj}, and {subj} {verb} {obj} {place}.",
        "Click here to read more. Copyright 2021 All rights reserved.",
        "Loading... please wait",
    ],
}

SHORT_ROWS: list[str] = words(
    "好的 嗯 谢谢 是的 哦 顶 好 不错 同意 收到 赞 沙发 楼上说得对 呵呵 啊 对 加油 厉害 转发 来了"
)

NAVIGATION: list[str] = [
    "首页 > 新闻 > 国内",
    "首页 > 新闻 > 国际",
    "首页 > 科技 > 正文",
    "当前位置：首页 > 历史 > 古代史",
    "首页 | 新闻 | 体育 | 娱乐 | 财经 | 登录 | 注册",
    "您的位置：首页 > 生活 > 美食 > 正文",
    "上一篇 下一篇 返回列表",
    "首页 > 论坛 > 灌水区 > 帖子",
    "网站首页 - 关于我们 - 联系我们 - 网站地图",
]

REPEATED_CHARS: list[str] = words("哈 啊 顶 呵 嘿 好 赞 6 ！ 。")

EMOJI: list[str] = ["😀", "😂", "👍", "❤️", "🎉", "🙏", "😭", "🔥", "🌸", "😊", "👏", "💪"]

# ASCII tokens written in full-width form (ＡＢＣ１２３) by the `fullwidth` damage.
FULLWIDTH_TOKENS: list[str] = words("ABC123 iPhone15 NBA CCTV5 WiFi 2023 GDP USB3.0 PM2.5 No.1 Top10 APP")

HTML_SITES: list[str] = words("example.com news.example.cn bbs.example.net www.example.org")

# Simplified → Traditional for every character above that differs, embedded so the generator
# needs no opencc; `python -m pipeline.tools.corpus_vocab` rebuilds it after the word lists change.
SIMPLIFIED_CHARS = (
    "与专业东丝两严个为丽举么乐习乡书买于云仅从们价会伞伟传体兰关兴养内册写军农冯决净准几划刘刚创别办务动"
    "区医华协单卫厅历厉厦厨县参发台叶号吃后吗听启吴员响团园国图场坛墙备复头妈娱孙学实宫对将尔岛币师带干广"
    "庆床庙开张强归当录征忆恒惊愿战扫报担拟据数旧时显晓机杂条来杨杰极构样桥梦楼横欢气汉没浆测济涛渔温游满"
    "滨潇点烟热爷环现电画疗矿礼种积税稳签简紧红纸组细织终绍经结绕统绸编网罗联脑艳节苏苹萧虑虽袜见观规视览"
    "觉计认讨议记讶许论设证试诗话说诸课调谈谢负财责货质费赛赞赵车轩转轻轼载较辟边达迁过运还这进远邻郑释里"
    "鉴钥铁银错镜长门问间闹闻队阳际陈随难静韩页顶项颁预题风饭饺馆馒马骄验骑骞鱼鲜鸡麦黄"
)
TRADITIONAL_CHARS = (
    "與專業東絲兩嚴個爲麗舉麼樂習鄉書買於雲僅從們價會傘偉傳體蘭關興養內冊寫軍農馮決淨準幾劃劉剛創別辦務動"
    "區醫華協單衛廳歷厲廈廚縣參發臺葉號喫後嗎聽啓吳員響團園國圖場壇牆備復頭媽娛孫學實宮對將爾島幣師帶幹廣"
    "慶牀廟開張強歸當錄徵憶恆驚願戰掃報擔擬據數舊時顯曉機雜條來楊傑極構樣橋夢樓橫歡氣漢沒漿測濟濤漁溫遊滿"
    "濱瀟點煙熱爺環現電畫療礦禮種積稅穩籤簡緊紅紙組細織終紹經結繞統綢編網羅聯腦豔節蘇蘋蕭慮雖襪見觀規視覽"
    "覺計認討議記訝許論設證試詩話說諸課調談謝負財責貨質費賽贊趙車軒轉輕軾載較闢邊達遷過運還這進遠鄰鄭釋裏"
    "鑑鑰鐵銀錯鏡長門問間鬧聞隊陽際陳隨難靜韓頁頂項頒預題風飯餃館饅馬驕驗騎騫魚鮮雞麥黃"
)


def vocabulary() -> set[str]:
    """Every CJK character the Chinese grammar and damage material can write."""
    chars: set[str] = set()

    def add(item) -> None:
        if isinstance(item, str):
            chars.update(c for c in item if "\u4e00" <= c <= "\u9fff")
        elif isinstance(item, dict):
            for value in item.values():
                add(value)
        else:
            for value in item:
                add(value)

    add([COMMON, TOPICS, POETRY, SHORT_ROWS, NAVIGATION, REPEATED_CHARS])
    return chars


def _print_traditional_table() -> None:
    import opencc  # the optional extra; only needed to rebuild the table

    converter = opencc.OpenCC("s2t")
    pairs = [(c, converter.convert(c)) for c in sorted(vocabulary())]
    pairs = [(s, t) for s, t in pairs if s != t and len(t) == 1]
    for name, text in (
        ("SIMPLIFIED_CHARS", "".join(s for s, _ in pairs)),
        ("TRADITIONAL_CHARS", "".join(t for _, t in pairs)),
    ):
        print(f"{name} = (")
        for start in range(0, len(text), 50):
            print(f'    "{text[start : start + 50]}"')
        print(")")


if __name__ == "__main__":
    _print_traditional_table()
