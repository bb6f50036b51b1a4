"""Validation messages in English and Korean (the seed promises Korean for review: 한글 검토)."""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "file_missing": {"en": "expected file is missing", "ko": "필요한 파일이 없습니다"},
    "file_empty": {"en": "file has no rows", "ko": "파일에 데이터가 없습니다"},
    "unknown_file": {
        "en": "file name follows no known pattern (classification_*, dialogue_<qna|technical|general>_*, unified_*); skipped",
        "ko": "알 수 없는 파일 이름입니다 (classification_*, dialogue_<qna|technical|general>_*, unified_*); 건너뜀",
    },
    "invalid_utf8": {"en": "invalid UTF-8 at byte {byte}", "ko": "UTF-8 인코딩 오류 (바이트 {byte})"},
    "invalid_json": {"en": "invalid JSON: {detail} (column {column})", "ko": "JSON 형식 오류: {detail} ({column}열)"},
    "not_object": {"en": "expected a JSON object, got {got}", "ko": "JSON 객체가 아닙니다 ({got})"},
    "missing_field": {"en": "required field `{field}` is missing", "ko": "필수 필드 `{field}` 가 없습니다"},
    "wrong_type": {
        "en": "field `{field}` must be {expected}, got {got}",
        "ko": "필드 `{field}` 의 타입은 {expected} 이어야 합니다 (현재 {got})",
    },
    "unknown_field": {"en": "unknown field `{field}` (ignored)", "ko": "알 수 없는 필드 `{field}` (무시됨)"},
    "passages_shape": {
        "en": "`passages` must be a list of objects with non-empty string `title`, `text` and `path` (item {item})",
        "ko": "`passages` 는 비어 있지 않은 문자열 `title`, `text`, `path` 를 가진 객체의 목록이어야 합니다 (항목 {item})",
    },
    "citation_range": {
        "en": "the answer cites [{n}] but the row has {count} passage(s)",
        "ko": "답변이 [{n}] 을(를) 인용하지만 행에는 근거 문단이 {count}개뿐입니다",
    },
    "label_range": {
        "en": "label {label} is not one of 0=qna, 1=technical, 2=general",
        "ko": "레이블 {label} 은(는) 0=qna, 1=technical, 2=general 중 하나가 아닙니다",
    },
    "category_unknown": {
        "en": "category {category!r} is not one of qna, technical, general",
        "ko": "카테고리 {category!r} 은(는) qna, technical, general 중 하나가 아닙니다",
    },
    "turns_empty": {"en": "`messages` holds no turns", "ko": "`messages` 에 대화 턴이 없습니다"},
    "turn_shape": {
        "en": "turn {turn} of `messages` must be an object with `role` (system, user or assistant) and string `content`",
        "ko": "`messages` 의 {turn}번째 턴은 `role`(system, user, assistant)과 문자열 `content` 를 가진 객체여야 합니다",
    },
    "turn_order": {
        "en": "turn {turn} of `messages` is {role!r} where {expected!r} belongs (an optional system message first, "
              "then user and assistant alternating)",
        "ko": "`messages` 의 {turn}번째 턴이 {expected!r} 자리에 {role!r} 입니다 (system 은 맨 앞에만, 그다음 user 와 "
              "assistant 가 번갈아)",
    },
    "turn_last": {
        "en": "`messages` must end with an assistant turn: there is no answer to learn",
        "ko": "`messages` 는 assistant 턴으로 끝나야 합니다: 학습할 답변이 없습니다",
    },
    "empty_text": {"en": "field `{field}` is empty or whitespace", "ko": "필드 `{field}` 가 비어 있습니다"},
    "too_short": {
        "en": "field `{field}` has {chars} characters, fewer than the minimum {limit}",
        "ko": "필드 `{field}` 가 {chars}자로 최소 길이 {limit}자보다 짧습니다",
    },
    "too_long_chars": {
        "en": "field `{field}` has {chars} characters, more than the limit {limit}",
        "ko": "필드 `{field}` 가 {chars}자로 최대 길이 {limit}자를 넘습니다",
    },
    "too_long_tokens": {
        "en": "row has {tokens} base-tokenizer tokens, more than the limit {limit}",
        "ko": "행의 토큰 수 {tokens}개가 최대 {limit}개를 넘습니다",
    },
    "duplicate": {
        "en": "duplicate of line {first} (same text after normalising case, punctuation and spaces)",
        "ko": "{first}번째 줄과 중복입니다 (대소문자·구두점·공백 정규화 후 동일)",
    },
    "leak": {
        "en": "also in {other}:{other_line}: the same question in two splits leaks the answer into evaluation",
        "ko": "{other}:{other_line} 에도 있습니다: 서로 다른 분할(split)에 같은 질문이 있으면 평가가 오염됩니다",
    },
    "imbalance": {
        "en": "labels are imbalanced: largest/smallest = {ratio:.1f} (limit {limit}); counts {counts}",
        "ko": "레이블 분포가 불균형합니다: 최대/최소 = {ratio:.1f} (한도 {limit}); 분포 {counts}",
    },
    "label_absent": {"en": "no rows with label {label}", "ko": "레이블 {label} 인 행이 없습니다"},
}


def render(code: str, lang: str = "en", **params: Any) -> str:
    return MESSAGES[code][lang].format(**params)
