"""Many surface forms for one question: templates, casing, typos, greetings and asides.

Real users write "how to trim lines autocad", "Hi! Quick question: what is DNS? thx" and
"photosyntesis?"; a classifier and a chat model trained on one phrasing per topic learn the
template, not the task.
"""

from __future__ import annotations

import random

CONCEPT_TEMPLATES = (
    "What is {s}?",
    "Can you explain {s}?",
    "Tell me about {s}.",
    "Explain {s} in simple terms.",
    "I'd like to understand {s}.",
    "What do you know about {s}?",
    "Could you describe {s}?",
    "Give me a short explanation of {s}.",
    "I keep hearing about {s}. What is it exactly?",
    "explain {s}",
    "{s}?",
    "I'm studying for a quiz. Can you tell me about {s}?",
    "My teacher mentioned {s} today. What is it?",
    "What should I know about {s}?",
)

TASK_TEMPLATES = (
    "How do I {t} {p} {tool}?",
    "How to {t} {p} {tool}?",
    "How can I {t} {p} {tool}?",
    "What's the best way to {t} {p} {tool}?",
    "Can you show me how to {t} {p} {tool}?",
    "I'm trying to {t} {p} {tool} but I can't figure it out.",
    "{tool}: how do I {t}?",
    "Steps to {t} {p} {tool}?",
    "I need to {t} {p} {tool}. Where do I start?",
    "Is there a quick way to {t} {p} {tool}?",
    "Walk me through how to {t} {p} {tool}.",
    "how to {t} {tool}",
    "{tool} {t}",
    "I'm new to {tool}. How do I {t}?",
)

ERROR_TEMPLATES = (
    "I get {m}. How do I fix it?",
    "How do I fix {m}?",
    "{m} - what should I do?",
    "Help! {m}",
    "Why do I get {m}?",
    "Getting {m}, any ideas?",
    "{tool} says {m}. What does that mean?",
    "I keep seeing {m} in {tool}. How can I solve it?",
)

SYMPTOM_TEMPLATES = (
    "{M}. What should I do?",
    "Help, {m}.",
    "{M}. How can I fix this?",
    "Any idea why {m}?",
    "{M}, any suggestions?",
    "I have a problem: {m}.",
    "{M}. I've already tried restarting.",
    "{m}??",
)

# Prepositions that read naturally before a tool's name.
ON_TOOLS = frozenset({"Windows", "macOS", "Linux", "a home router"})

QUESTION_PREFIXES = ("", "", "", "Hi! ", "Quick question: ", "Hey, ", "Sorry to bother you, but ", "Hello, ",
                     "I'm a beginner. ", "Please help. ")
QUESTION_SUFFIXES = ("", "", "", " Thanks!", " Please keep it simple.", " Thanks in advance.", " I'm in a hurry.",
                     " thx")
CHAT_PREFIXES = ("", "", "", "hey, ", "hi! ", "so ", "honestly, ", "well, ", "ok so ")
CHAT_SUFFIXES = ("", "", "", " lol", " haha", " tbh", " :)")


def typo(text: str, rng: random.Random) -> str:
    """Swap or drop one letter inside one longer word, the way hurried typing does."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.5 else w[:j] + w[j + 1:]
    return " ".join(words)


def casual(text: str) -> str:
    """Lowercase with the final punctuation dropped: how many people type into a chat box."""
    return text.lower().rstrip(".?!")


def decorate(text: str, rng: random.Random, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> str:
    """One random surface form of `text`: maybe a greeting before, an aside after, casual or mistyped."""
    prefix, suffix = rng.choice(prefixes), rng.choice(suffixes)
    out = text
    continues = prefix and not prefix.endswith((". ", "! ", ": "))
    if continues and not out.startswith(("I ", "I'")) and out[1:2].islower():
        out = out[0].lower() + out[1:]  # "Hey, how do I ..." continues the sentence
    if suffix[:2].strip()[:1].isupper() and out[-1:].isalnum():
        out += "."  # "Explain DNS. Thanks!" rather than "Explain DNS Thanks!"
    out = capitalize(prefix + out + suffix)
    roll = rng.random()
    if roll < 0.25:
        return casual(out)
    if roll < 0.40:
        return typo(out, rng)
    return out


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
