"""Clean stage: each rule and each filter with concrete before/after strings."""

from __future__ import annotations

import random
import re
import sys
from collections import Counter

import pytest

from pipeline.core.typed_config import ConfigError, from_dict
from pipeline.data.cleaner import DROP_REASONS, CleanConfig, Cleaner, cjk_share
from pipeline.formats.documents import Document

ALL_RULES_OFF = dict(
    strip_html=False,
    remove_control=False,
    normalize_width=False,
    traditional_to_simplified=False,
    collapse_whitespace=False,
    join_cjk_spaces=False,
)


def only(rule: str, **extra) -> Cleaner:
    """A cleaner with just one rule switched on, to test that rule alone."""
    return Cleaner(CleanConfig(**{**ALL_RULES_OFF, rule: True, **extra}))


DEFAULT = Cleaner(CleanConfig())


# --- rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "before, after",
    [
        ("<p>第一段</p><p>第二段</p>", "\n第一段\n\n第二段\n"),
        ("换行<br/>之后", "换行\n之后"),
        ('<a href="x.html">链接</a>文字', "链接文字"),
        ("你好&nbsp;世界&gt;&lt;&amp;", "你好\xa0世界><&"),
        ("&#8220;引号&#8221;&#x4E2D;", "“引号”中"),
        ("<script>var a = '<b>';</script>正文<style>p{}</style>", "正文"),
        ("<!-- 注释 -->正文<!DOCTYPE html>", "正文"),
        ("如果x<y且y>z，那么", "如果x<y且y>z，那么"),  # not a tag: no ASCII tag name follows '<'
        ("&lt;p&gt;编码的标签是正文", "<p>编码的标签是正文"),  # decoded, not stripped again
    ],
)
def test_strip_html(before, after):
    assert only("strip_html").clean_text(before) == after


@pytest.mark.parametrize(
    "before, after",
    [
        ("\x1b[31m红色\x1b[0m文字", "红色文字"),
        ("\x1b[1;32;40m加粗\x1b[K", "加粗"),
        ("\x1b]0;标题\x07正文", "正文"),
        ("铃\x07声\x00空\x7f删\x85下", "铃声空删下"),
        ("零\u200b宽\u200d连\ufeff接\u00ad符\u202e号", "零宽连接符号"),
        ("坏字节\ufffd\ufffd被删", "坏字节被删"),
        ("保留\t制表\n换行", "保留\t制表\n换行"),
    ],
)
def test_remove_control(before, after):
    assert only("remove_control").clean_text(before) == after


@pytest.mark.parametrize(
    "before, after",
    [
        ("ＡＢＣ　ｘｙｚ　０１２３", "ABC xyz 0123"),
        ("价格：＄１００，折扣５０％！", "价格：$100，折扣50%！"),  # ：，！ stay full-width
        ("问号？括号（内容）分号；冒号：", "问号？括号（内容）分号；冒号："),
        ("３．１４＋１＝４．１４", "3.14+1=4.14"),
        ("句号。顿号、书名号《》引号“”‘’省略号……", "句号。顿号、书名号《》引号“”‘’省略号……"),
    ],
)
def test_normalize_width(before, after):
    assert only("normalize_width").clean_text(before) == after


@pytest.mark.parametrize(
    "before, after",
    [
        ("多个   空格\t\t和制表", "多个 空格 和制表"),
        ("  首尾空白  \n", "首尾空白"),
        ("段一\r\n\r\n\r\n段二\r段三", "段一\n段二\n段三"),
        ("行尾空格   \n   行首空格", "行尾空格\n行首空格"),
        ("不间断\xa0空格\u3000全角\u2003空格", "不间断 空格 全角 空格"),
        ("分隔\u2028符\x0c换页", "分隔\n符\n换页"),
    ],
)
def test_collapse_whitespace(before, after):
    assert only("collapse_whitespace").clean_text(before) == after


@pytest.mark.parametrize(
    "before, after",
    [
        ("中 文 被 折 行 拆 开", "中文被折行拆开"),
        ("你好， 世界 。", "你好，世界。"),
        ("使用 Python 安装", "使用 Python 安装"),  # CJK next to Latin keeps its space
        ("他说 “你好” 然后", "他说“你好”然后"),
        ("版本 3 发布", "版本 3 发布"),
        ("第一行\n第二行", "第一行\n第二行"),  # line breaks are not wrapping spaces
    ],
)
def test_join_cjk_spaces(before, after):
    assert only("join_cjk_spaces").clean_text(before) == after


def test_traditional_to_simplified():
    cleaner = only("traditional_to_simplified")
    assert cleaner.clean_text("這是繁體中文，請轉換。") == "这是繁体中文，请转换。"
    assert DEFAULT.clean_text("這是繁體") == "這是繁體"  # off by default


def test_all_rules_off_is_identity():
    messy = "<b>ＡＢ</b>\x1b[0m 中 文\r\n\n"
    assert Cleaner(CleanConfig(**ALL_RULES_OFF)).clean_text(messy) == messy


def test_default_rules_together():
    messy = (
        "<div>\x1b[32m中 文\x1b[0m&nbsp;新闻：ＡＢＣ公司发布&#8220;新产品&#8221;</div>"
        "<p>价格　１２３元！\u200b</p>\r\n\r\n"
    )
    assert DEFAULT.clean_text(messy) == "中文新闻：ABC公司发布“新产品”\n价格 123元！"


def test_cleaning_is_deterministic_and_idempotent():
    text = "<p>中 文 测试&amp;</p>\tＡＢＣ\r\n\r\n重复"
    once = DEFAULT.clean_text(text)
    assert DEFAULT.clean_text(text) == once
    assert DEFAULT.clean_text(once) == once


# --- filters -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        (" \n ", "empty"),
        ("好的", "too_short"),
        ("谢谢 分享", "too_short"),  # 4 characters; spaces do not count
        ("今天天气很好。", None),  # 7 characters
        ("哈哈哈哈哈哈哈哈哈哈", "repetitive_chars"),  # a run of 10 > max_char_run 8
        ("太好笑了哈哈哈哈哈哈哈哈哈", "repetitive_chars"),
        ("我们常常说哈哈哈哈，挺好。", None),  # a run of 4 is ordinary
        ("!!!!!!!!", "repetitive_chars"),  # one character is all of it
        ("啊哈啊哈啊哈啊哈啊哈", None),  # exactly half: not more than max_top_char_share
        ("啊哈啊哈啊啊哈啊啊", "repetitive_chars"),  # 啊 is 6 of 9
        ("第1000000000000期节目很好看，大家都说非常喜欢这一期", None),  # digits are not a run
        ("标题一行\n标题一行\n标题一行\n正文内容很少", "repetitive_lines"),  # 2 of 4 repeat
        ("第一行内容\n第二行内容\n第三行内容\n第一行内容\n第四行内容\n第五行", None),  # 1 of 6
        ("Hello world, this row is English only.", "low_cjk_share"),
        ("def main(): return compute(x, y)", "low_cjk_share"),
        ("Home > News > World > Asia", "low_cjk_share"),
        ("I love 北京 and the Great Wall very much", "low_cjk_share"),  # 2 Han, 8 words
        ("使用 Python 3.11 安装 PyTorch 2.0 版本", None),  # 6 Han, 2 words
        ("123456789", "low_cjk_share"),  # no Han at all
    ],
)
def test_drop_reason(text, reason):
    assert DEFAULT.drop_reason(text) == reason
    assert reason is None or reason in DROP_REASONS


def test_cjk_share_counts_han_against_latin_words():
    assert cjk_share("中文") == 1.0
    assert cjk_share("English") == 0.0
    assert cjk_share("用pip安装") == pytest.approx(3 / 4)
    assert cjk_share("2024年，100%") == 1.0  # digits and symbols are neutral
    assert cjk_share("") == 0.0


@pytest.mark.parametrize(
    "config, text",
    [
        (dict(min_chars=0), "你好"),
        (dict(max_char_run=None, max_top_char_share=None), "哈哈哈哈哈哈哈哈哈哈哈哈"),
        (dict(max_repeated_line_share=None), "同一行\n同一行\n同一行"),
        (dict(min_cjk_share=0.0), "English only is fine now"),
    ],
)
def test_each_filter_can_be_switched_off(config, text):
    assert Cleaner(CleanConfig(**config)).drop_reason(text) is None


def test_thresholds_are_configurable():
    assert Cleaner(CleanConfig(min_chars=10)).drop_reason("今天天气很好。") == "too_short"
    assert Cleaner(CleanConfig(max_char_run=3)).drop_reason("我们常常说哈哈哈哈，挺好。") == "repetitive_chars"
    assert Cleaner(CleanConfig(min_cjk_share=0.9)).drop_reason("使用 Python 安装 PyTorch 版本") == "low_cjk_share"


def test_long_run_found_at_any_offset():
    # The run check samples every k-th character first; a run must be found wherever it sits.
    cleaner = Cleaner(CleanConfig(max_top_char_share=None))
    for prefix in range(7):
        text = "正常" * 10 + "x" * prefix + "嗯" * 9 + "结束语句很正常"
        assert cleaner.drop_reason(text) == "repetitive_chars", prefix
        assert cleaner.drop_reason(text.replace("嗯" * 9, "嗯" * 8)) is None, prefix


def test_long_run_pre_check_agrees_with_the_rule_on_random_texts():
    # The rule's definition, on the whole text: a letter or Han character repeated more than
    # max_char_run times. The sampled pre-check must never change the answer.
    rng = random.Random(5)
    alphabet = "哈啊好的aZ1 。!-"
    for run in (1, 2, 3, 5, 8, 11):
        cleaner = Cleaner(CleanConfig(max_char_run=run, max_top_char_share=None))
        definition = re.compile(rf"([^\W\d_])\1{{{run},}}")
        for _ in range(400):
            text = "".join(rng.choice(alphabet) * rng.randint(1, run + 3) for _ in range(rng.randint(1, 12)))
            assert cleaner._has_long_run(text) == (definition.search(text) is not None), (run, text)


def test_top_char_share_candidates_agree_with_the_rule_on_random_texts():
    # The rule's definition: the most frequent non-space character's share of the text. The
    # check looks only at characters next to themselves (and the first one); never a different answer.
    rng = random.Random(6)
    for limit in (0.5, 0.6, 0.75, 0.99):
        cleaner = Cleaner(CleanConfig(max_top_char_share=limit, max_char_run=None))
        for _ in range(2000):
            alphabet = rng.choice(["ab", "abc", "哈啊", "哈啊好的aZ1。!", "xyzxyzw"])
            dense = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
            if rng.random() < 0.2:  # alternating texts: the majority character is never next to itself
                dense = "".join("a" if i % 2 == 0 else rng.choice("bcd") for i in range(rng.randint(1, 30)))
            expected = max(Counter(dense).values()) / len(dense) > limit
            assert cleaner._top_char_share_over(dense) == expected, (limit, dense)


# --- the document interface -------------------------------------------------------------
def test_call_keeps_key_and_cleans():
    pieces, reason = DEFAULT(Document("<p>中 文 句子，内容足够长。</p>", "corpus/a.csv", 7))
    assert reason is None
    assert [(p.text, p.source, p.row) for p in pieces] == [("中文句子，内容足够长。", "corpus/a.csv", 7)]


def test_call_reports_reason():
    assert DEFAULT(Document("<br><br>&nbsp;", "a.csv", 0)) == ([], "empty")
    assert DEFAULT(Document("English only row here", "a.csv", 1)) == ([], "low_cjk_share")


def test_max_chars_splits_at_sentence_ends():
    cleaner = Cleaner(CleanConfig(max_chars=12))
    text = "第一句话。第二句话！“第三句？”他说。最后一句没有标点但是非常非常长的一句话"
    pieces, reason = cleaner(Document(text, "a.csv", 3))
    assert reason is None
    assert [p.text for p in pieces] == [
        "第一句话。第二句话！",
        "“第三句？”他说。",
        "最后一句没有标点但是非常",
        "非常长的一句话",
    ]
    assert all(len(p.text) <= 12 for p in pieces)
    assert {(p.source, p.row) for p in pieces} == {("a.csv", 3)}
    assert "".join(p.text for p in pieces) == text  # nothing lost, nothing added


def test_max_chars_splits_at_line_breaks_and_leaves_short_text_alone():
    cleaner = Cleaner(CleanConfig(max_chars=8))
    assert cleaner.split("第一段内容\n第二段内容") == ["第一段内容", "第二段内容"]
    assert cleaner.split("短句。") == ["短句。"]


def test_filters_see_the_whole_text_before_splitting():
    cleaner = Cleaner(CleanConfig(max_chars=6))
    assert cleaner(Document("重复\n重复\n重复\n不同", "a.csv", 0)) == ([], "repetitive_lines")


# --- config -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value",
    [
        ("min_chars", -1),
        ("min_cjk_share", 1.5),
        ("max_repeated_line_share", -0.1),
        ("max_char_run", 0),
        ("max_top_char_share", 0.0),
        ("max_chars", 0),
    ],
)
def test_bad_config_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        from_dict(CleanConfig, {key: value}, "clean")


def test_config_loads_from_mapping():
    config = from_dict(CleanConfig, {"min_chars": 10, "max_chars": 2000, "strip_html": False})
    assert config.min_chars == 10 and config.max_chars == 2000 and not config.strip_html


def test_traditional_to_simplified_without_opencc_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "opencc", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install opencc-python-reimplemented"):
        from_dict(CleanConfig, {"traditional_to_simplified": True}, "clean")
