"""The built-in rubrics shipped as package data in core/rubrics/*.yaml.

``default-zh`` follows the Chinese inspection standard the project started from (服务用语:
开头语/结束语, 礼貌用语, 致谢语, 致歉语, 服务禁语, 口头禅, 侮辱攻击讽刺语言; 服务态度: 不打断;
沟通技巧: 避免沉默; 语速, 音量, 情绪, 投诉风险预警); ``default-en`` is its English counterpart.
"""

from __future__ import annotations

import functools
from importlib import resources

from core.rubric.loading import load_rubric_text
from core.rubric.schema import Rubric

BUILTIN_FILES = {"default-zh": "default-zh.yaml", "default-en": "default-en.yaml"}


@functools.lru_cache(maxsize=1)
def builtin_rubrics() -> dict[str, str]:
    """YAML text of every built-in rubric, by rubric id."""
    base = resources.files("core").joinpath("rubrics")
    return {
        rid: base.joinpath(name).read_text(encoding="utf-8") for rid, name in BUILTIN_FILES.items()
    }


def default_rubric(lang: str = "zh") -> Rubric:
    """The built-in rubric for a language: Chinese for zh (and its variants), else English."""
    key = "default-zh" if lang.lower().split("-")[0] in ("zh", "yue", "cmn") else "default-en"
    return load_rubric_text(builtin_rubrics()[key])
