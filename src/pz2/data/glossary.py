"""Korean names of the tools and technical words pz2's topics use, with their English: what lets the
English-only encoder search, and the English-only base answer, a question written in Korean.

"스케치업에서 곡면 모델링" reaches the encoder as jamo it never learned; glossed, it also reads "SketchUp
curved surfaces modeling", which finds the passage on SketchUp's curved surfaces. The entries are stems:
Korean attaches particles and endings ("곡면을", "모델링하는"), so an entry matches inside a word; words
common inside others are left out ("워드" in "키워드", "깃", "맥"; one-syllable ones: "선" in "선택", "표" in
"표시", "행" in "실행").
"""

from __future__ import annotations

import re

# the tools of the technical topic bank, as Korean writes them
TOOLS = {
    "오토캐드": "AutoCAD", "캐드": "CAD", "스케치업": "SketchUp", "엑셀": "Excel", "포토샵": "Photoshop",
    "블렌더": "Blender", "도커": "Docker", "리눅스": "Linux", "파이썬": "Python", "윈도우": "Windows",
    "퓨전 360": "Fusion 360", "비주얼 스튜디오 코드": "Visual Studio Code", "와이파이": "Wi-Fi", "공유기": "router",
    "맥OS": "macOS",
}
# technical and request words, as the topics and questions use them
WORDS = {
    "고급": "advanced", "복잡": "complex", "전문": "expert", "자세히": "in detail", "상세": "detailed",
    "오류": "error", "에러": "error", "설치": "install", "설정": "settings", "모델링": "modeling",
    "곡면": "curved surfaces", "렌더링": "rendering", "스크립트": "script", "서버": "server", "네트워크": "network",
    "드라이버": "driver", "플러그인": "plugin", "기법": "techniques", "방법": "how to", "어떻게": "how to",
    "단축키": "shortcut", "자르": "trim", "그리기": "draw", "그리는": "draw", "재질": "materials", "텍스처": "textures",
    "레이어": "layers", "저장": "save", "내보내": "export", "가져오": "import", "삭제": "delete", "복사": "copy",
    "붙여넣": "paste", "되돌리": "undo", "업데이트": "update", "느려": "slow", "연결": "connect",
    "비밀번호": "password", "파일": "file", "폴더": "folder", "함수": "function", "수식": "formula",
    "그래프": "chart", "이미지": "image", "사진": "photo",
    "명령어": "command", "컴포넌트": "components", "그룹": "groups", "치수": "dimensions", "스케치": "sketch",
}
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# longest first, so "오토캐드" is read before the "캐드" inside it
_ENTRIES = sorted({**TOOLS, **WORDS}.items(), key=lambda e: len(e[0]), reverse=True)


def gloss(text: str) -> str:
    """The English of the glossary's Korean words in `text`, in the order they appear ("" when none)."""
    found: list[tuple[int, str]] = []
    rest = text
    for korean, english in _ENTRIES:
        at = rest.find(korean)
        while at >= 0:
            found.append((at, english))
            rest = rest[:at] + " " * len(korean) + rest[at + len(korean):]
            at = rest.find(korean)
    return " ".join(dict.fromkeys(english for _, english in sorted(found)))


def expand_query(text: str) -> str:
    """`text`, followed by the English of its Korean words when it has any: a search query the English
    encoder and the BM25 index can read."""
    if not _HANGUL.search(text):
        return text
    english = gloss(text)
    return f"{text} ({english})" if english else text
