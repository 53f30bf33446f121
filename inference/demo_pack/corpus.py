"""Seeded generator of the demo corpus: templated English (and some French) sentences.

Each family gives a well-known circuit something to form on. Held-out splits (indirect-object
names, two-hop cities, addition pairs) never occur in the family's training sentences, so the
evaluation on them measures generalisation rather than recall.
"""

import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from inference.demo_pack import word_lists as words

FAMILIES = ("facts", "two_hop", "ioi", "opposites", "addition", "filler")


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0
    # Relative frequency of each family in the sentence stream. Facts and opposites are recalled
    # verbatim, so they need many repetitions; filler only keeps the model from being all template.
    family_weights: dict[str, float] = field(
        default_factory=lambda: {
            "facts": 0.18,
            "two_hop": 0.16,
            "ioi": 0.28,
            "opposites": 0.1,
            "addition": 0.12,
            "filler": 0.16,
        }
    )
    # Operands of the addition family are below this bound.
    addition_bound: int = 50
    # Fraction of unordered addition pairs {a, b} held out of training (both orders).
    addition_held_out_fraction: float = 0.1


@dataclass(frozen=True)
class Sentence:
    family: str
    text: str


@dataclass(frozen=True)
class EvalItem:
    """A prompt whose greedy continuation must start with `answer` (which begins with a space
    or directly after an opening quote, exactly as in the training sentences)."""

    prompt: str
    answer: str


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def held_out_addition_pairs(config: CorpusConfig) -> frozenset[tuple[int, int]]:
    """Ordered pairs (a, b) that never appear in training; closed under swapping a and b."""
    rng = random.Random(f"{config.seed}-addition-held-out")
    n = config.addition_bound
    unordered = [(a, b) for a in range(n) for b in range(a, n)]
    chosen = rng.sample(unordered, round(len(unordered) * config.addition_held_out_fraction))
    return frozenset([(a, b) for a, b in chosen] + [(b, a) for a, b in chosen])


@functools.cache
def _city_to_state() -> dict[str, str]:
    return {city: state for state, (_, cities) in words.US_STATES.items() for city in cities}


def _fact(rng: random.Random) -> str:
    country, capital, continent, language = rng.choice(words.COUNTRIES)
    template = rng.randrange(3)
    if template == 0:
        return f"The capital of {country} is {capital}."
    if template == 1:
        return _capitalise(f"{country} is in {continent}.")
    return f"People in {country} speak {language}."


def _two_hop(rng: random.Random) -> str:
    city_state = _city_to_state()
    template = rng.randrange(3)
    if template == 0:
        city = rng.choice(sorted(city_state))
        return f"{city} is in {city_state[city]}."
    if template == 1:
        state = rng.choice(sorted(words.US_STATES))
        return f"The capital of {state} is {words.US_STATES[state][0]}."
    trained = sorted(set(city_state) - set(words.TWO_HOP_HELD_OUT_CITIES))
    city = rng.choice(trained)
    capital = words.US_STATES[city_state[city]][0]
    return f"The capital of the state containing {city} is {capital}."


def ioi_sentence(a: str, b: str, place: str, thing: str, *, giver_is_b: bool) -> str:
    giver, receiver = (b, a) if giver_is_b else (a, b)
    return f"When {a} and {b} went to the {place}, {giver} gave a {thing} to {receiver}."


def _ioi(rng: random.Random) -> str:
    a, b = rng.sample(words.NAMES, 2)
    # Both givers occur, so "answer with the first name" is not a shortcut: the model has to
    # find the name that was not repeated, which is the indirect-object circuit.
    return ioi_sentence(
        a, b, rng.choice(words.PLACES), rng.choice(words.THINGS), giver_is_b=rng.random() < 0.5
    )


def _opposite(rng: random.Random) -> str:
    french = rng.random() < 0.4
    word, antonym = rng.choice(words.OPPOSITES_FR if french else words.OPPOSITES_EN)
    if rng.random() < 0.5:
        word, antonym = antonym, word
    if french:
        return f'Le contraire de "{word}" est "{antonym}".'
    return f'The opposite of "{word}" is "{antonym}".'


def _addition(rng: random.Random, held_out: frozenset[tuple[int, int]], bound: int) -> str:
    while True:
        a, b = rng.randrange(bound), rng.randrange(bound)
        if (a, b) not in held_out:
            return f"{a} + {b} = {a + b}."


def _filler(rng: random.Random) -> str:
    # All names, held-out ones included, and mostly mid-sentence (" Olivia" is a different token
    # sequence from a sentence-initial "Olivia"), so every name the evaluation uses is trained.
    name, other = rng.sample(words.NAMES + words.IOI_HELD_OUT_NAMES, 2)
    template = rng.randrange(8)
    if template == 0:
        adjective, animal = rng.choice(words.ADJECTIVES), rng.choice(words.ANIMALS)
        return f"The {adjective} {animal} {rng.choice(words.VERBS_PAST)} {rng.choice(words.TIMES)}."
    if template == 1:
        return f"{name} {rng.choice(words.VERBS_PAST)} to the {rng.choice(words.PLACES)}."
    if template == 2:
        return f"Yesterday {name} ate {rng.choice(words.FOODS)} and {rng.choice(words.FOODS)}."
    if template == 3:
        return f"The {rng.choice(words.ANIMALS)} followed {name} to the {rng.choice(words.PLACES)}."
    if template == 4:
        return f"{name} met {other} at the {rng.choice(words.PLACES)} {rng.choice(words.TIMES)}."
    # Sentences that repeat a name teach the model to copy every name from its context, the
    # mechanism the indirect-object circuit needs for names it never saw in that template.
    if template == 5:
        return f"{name} called {other}, and {other} answered."
    if template == 6:
        thing = rng.choice(words.THINGS)
        return f"{name} had a {thing}, so the {thing} went back to {name}."
    return f"This is {name}, and {name} likes {rng.choice(words.FOODS)}."


def sentences(config: CorpusConfig, split: str) -> Iterator[Sentence]:
    """Endless stream of training-distribution sentences. Different `split` names ("train",
    "transcoders", "dashboards") give independent streams from the same distribution."""
    rng = random.Random(f"{config.seed}-{split}")
    held_out = held_out_addition_pairs(config)
    families = list(config.family_weights)
    weights = [config.family_weights[f] for f in families]
    while True:
        family = rng.choices(families, weights)[0]
        if family == "facts":
            text = _fact(rng)
        elif family == "two_hop":
            text = _two_hop(rng)
        elif family == "ioi":
            text = _ioi(rng)
        elif family == "opposites":
            text = _opposite(rng)
        elif family == "addition":
            text = _addition(rng, held_out, config.addition_bound)
        else:
            text = _filler(rng)
        yield Sentence(family, text)


def evaluation_sets(config: CorpusConfig) -> dict[str, list[EvalItem]]:
    """Templated completions the card reports accuracy on, by family.

    Facts and opposites are recall (every fact taught); the `_held_out` sets only use names,
    cities or pairs the family's training sentences never contain.
    """
    rng = random.Random(f"{config.seed}-evaluation")
    facts = []
    for country, capital, continent, language in words.COUNTRIES:
        facts.append(EvalItem(f"The capital of {country} is", f" {capital}"))
        facts.append(EvalItem(_capitalise(f"{country} is in"), f" {continent}"))
        facts.append(EvalItem(f"People in {country} speak", f" {language}"))
    opposites = []
    for word, antonym in words.OPPOSITES_EN:
        opposites.append(EvalItem(f'The opposite of "{word}" is "', antonym))
        opposites.append(EvalItem(f'The opposite of "{antonym}" is "', word))
    for word, antonym in words.OPPOSITES_FR:
        opposites.append(EvalItem(f'Le contraire de "{word}" est "', antonym))
        opposites.append(EvalItem(f'Le contraire de "{antonym}" est "', word))

    def ioi_items(names: tuple[str, ...], n: int) -> list[EvalItem]:
        items = []
        for _ in range(n):
            a, b = rng.sample(names, 2)
            giver_is_b = rng.random() < 0.5
            sentence = ioi_sentence(
                a, b, rng.choice(words.PLACES), rng.choice(words.THINGS), giver_is_b=giver_is_b
            )
            receiver = a if giver_is_b else b
            prompt = sentence.removesuffix(f" {receiver}.")
            items.append(EvalItem(prompt, f" {receiver}"))
        return items

    city_state = _city_to_state()

    def two_hop_items(cities: list[str]) -> list[EvalItem]:
        return [
            EvalItem(
                f"The capital of the state containing {city} is",
                f" {words.US_STATES[city_state[city]][0]}",
            )
            for city in cities
        ]

    trained_cities = sorted(set(city_state) - set(words.TWO_HOP_HELD_OUT_CITIES))
    held_out_pairs = sorted(held_out_addition_pairs(config))
    return {
        "facts": facts,
        "opposites": opposites,
        "ioi_held_out": ioi_items(words.IOI_HELD_OUT_NAMES, 200),
        "ioi_trained_names": ioi_items(words.NAMES, 200),
        "addition_held_out": [EvalItem(f"{a} + {b} =", f" {a + b}") for a, b in held_out_pairs],
        "two_hop_held_out": two_hop_items(list(words.TWO_HOP_HELD_OUT_CITIES)),
        "two_hop_trained": two_hop_items(trained_cities),
    }
