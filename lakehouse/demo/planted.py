"""The `planted` demo corpus: long-range dependencies put there on purpose, with ground truth.

Each *story* has invented facts (a person's name, a place, a registry code, a count). A
*source* document introduces them; a *root* document, a day-by-day log written later, uses
them without introducing them, so a model that reads the root alone cannot predict those
tokens and one that has read the source can. *Distractor* documents cover the same topics
with other invented facts, so retrieval by topic alone is not enough and verification has
to tell the true source from look-alikes. The ground truth table lists, for every root, the
character span of the first use of each planted fact and the source document it comes from.

Everything is drawn from ``random.Random(seed)``: the same settings give the same bytes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lakehouse.ids import doc_id

ONSETS = ["qu", "v", "th", "z", "k", "dr", "br", "m", "sel", "t", "gr", "h", "n", "or", "l"]
VOWELS = ["a", "o", "e", "i", "au", "ae", "y", "u", "ei"]
CODAS = ["rv", "th", "nd", "ss", "lk", "rn", "x", "m", "sk", "lv", "dr", "nt", "r"]
ENDINGS = ["ath", "ey", "ion", "or", "aine", "ulf", "ess", "ard", "isk", "enne"]
PLACE_ENDINGS = ["moor", "holt", "vane", "mere", "stead", "ford", "crest", "wick"]


def _word(rng: random.Random, endings: list[str], syllables: int) -> str:
    parts = []
    for _ in range(syllables):
        parts.append(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS))
    return ("".join(parts) + rng.choice(endings)).capitalize()


@dataclass(frozen=True)
class Facts:
    person: str
    place: str
    code: str
    number: str


def invent_facts(rng: random.Random) -> Facts:
    person = f"{_word(rng, ENDINGS, 1)} {_word(rng, ENDINGS, 2)}"
    place = _word(rng, PLACE_ENDINGS, 1)
    code = f"{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}-{rng.randint(1000, 9999)}"
    number = str(rng.randint(13, 987))
    return Facts(person, place, code, number)


# Per domain: sentences that introduce the facts (source and distractor documents), sentences
# that use them (root documents), and background sentences that mention none of them.
DOMAINS: dict[str, dict[str, list[str]]] = {
    "expedition": {
        "routine": ["The team checked the stakes on the glacier and returned to the camp before dark.",
                    "The cook melted snow for water while the others repaired the sledges in the tent."],
        "intro": [
            "The survey expedition to the northern ice fields was led by {person}, a glaciologist who had spent a decade measuring how fast the outlet glaciers retreat.",
            "Its base camp stood near the village of {place}, where the team rented a stone barn to store fuel, sledges and instruments.",
            "The national polar office registered the journey under permit {code}, which every crate and logbook had to carry.",
            "In all, {number} members took part, counting the cooks, the mechanics and the two doctors.",
            "{person} insisted that every sample be photographed twice before it left the ice.",
        ],
        "use": [
            "When the final report reached the ministry, it was {person} who presented the findings in person.",
            "Several of the ice cores had been stored in the barn at {place} for most of the winter.",
            "Auditors later traced every invoice back to permit {code} without finding a single error.",
            "The ministry thanked all {number} members of the team in a short public letter.",
        ],
        "background": [
            "Glaciers in the region have lost a large share of their volume over the last century.",
            "Ice cores preserve small bubbles of old air, which let scientists read the atmosphere of past millennia.",
            "Fieldwork on the ice is limited to a few weeks each year, when the light is long and the storms are fewer.",
            "Measuring the speed of a glacier requires stakes drilled into the ice and surveyed again months later.",
            "Supplies are usually moved by tracked vehicles, and in bad years by dog teams as well.",
            "The data from such surveys feed the models that forecast sea-level rise for coastal cities.",
        ],
    },
    "shipwreck": {
        "routine": ["The divers checked the grid lines over the wreck and returned to the harbour before dark.",
                    "The boat stayed at anchor while the crew rinsed the tanks and dried the wetsuits."],
        "intro": [
            "The cargo ship was discovered by the diver {person}, who had searched the strait for three summers with a borrowed sonar.",
            "The wreck lies on a sandbank a few miles off the harbour of {place}, in water shallow enough for careful amateur dives.",
            "The maritime heritage board entered it into its register as site {code}, which makes it unlawful to remove anything.",
            "Divers have counted {number} sealed clay jars still resting in the hold.",
            "{person} kept a handwritten diary of every dive, with sketches of the hull timbers.",
        ],
        "use": [
            "Museum staff credited {person} in the caption of the largest display case.",
            "Small fishing boats from {place} still carry visitors over the site on calm days.",
            "The exhibition label quotes the register entry {code} beneath each object.",
            "Conservators plan to lift all {number} jars over the next five seasons.",
        ],
        "background": [
            "Salt water slowly eats away iron fittings, while timber buried in sand can survive for centuries.",
            "Underwater archaeology relies on grids of string laid over the seabed to record where each find lies.",
            "Sonar surveys send pulses of sound to the bottom and listen for the echoes of unusual shapes.",
            "Many wrecks along this coast date from the age when grain and oil were shipped in clay containers.",
            "Lifting fragile objects from the sea needs tanks of fresh water to wash out the salt over many months.",
            "Local divers often know the seabed better than any chart drawn by a survey vessel.",
        ],
    },
    "observatory": {
        "routine": ["The staff opened the dome at dusk and closed it again before the sun came up.",
                    "The night assistant cleaned the mirror cover and logged the humidity every hour."],
        "intro": [
            "The new telescope was designed by the engineer {person}, whose earlier work was on lenses for weather satellites.",
            "It was built on a dry ridge above the town of {place}, chosen for its clear skies and thin air.",
            "The astronomical union catalogued the first comet it found as object {code}.",
            "Over its first year the instrument recorded {number} nights of usable observations.",
            "{person} wrote the control software almost alone during the first winter.",
        ],
        "use": [
            "At the opening ceremony, {person} was invited to press the button that opened the dome.",
            "Visitors now drive up the winding road from {place} to the ridge on public nights.",
            "Amateur astronomers around the world followed the comet {code} as it brightened in spring.",
            "The annual review counted {number} nights of usable data, a record for the region.",
        ],
        "background": [
            "Large telescopes are placed on mountains to rise above the densest and most turbulent air.",
            "Light pollution from towns can wash out faint galaxies, so observatories ask nearby streets to dim their lamps.",
            "A comet's tail always points away from the sun, pushed by the solar wind.",
            "Mirrors for telescopes are ground for months and then coated with a thin layer of aluminium.",
            "Astronomers often work at night and sleep in the morning, keeping the domes dark and cold.",
            "Catalogues of objects let observers around the world compare measurements of the same target.",
        ],
    },
    "vineyard": {
        "routine": ["The pickers walked the rows at dawn and carried the full baskets down to the cellar.",
                    "The cellar hands washed the presses and stacked the empty barrels by the door."],
        "intro": [
            "The estate was founded by the grower {person}, who planted the first vines on a slope that others thought too steep.",
            "Its cellars are dug into the hillside just outside {place}, where the temperature stays cool all year.",
            "The regional wine board recorded the vineyard under appellation number {code}.",
            "The founder planted exactly {number} rows of vines in the first season.",
            "{person} kept the old practice of picking every grape by hand.",
        ],
        "use": [
            "Critics who visited the estate always asked to meet {person} before tasting anything.",
            "Tours of the cellars start at the small square in the centre of {place}.",
            "Every bottle still bears the appellation number {code} on its back label.",
            "The harvest festival celebrates the original {number} rows with a walk through the vines.",
        ],
        "background": [
            "Grapes grown on steep slopes receive more sunlight and drain rainwater quickly.",
            "A cool cellar lets wine age slowly and keeps the corks from drying out.",
            "The harvest usually begins when the sugar in the grapes reaches the level the winemaker wants.",
            "Old vines give fewer grapes, but their fruit is often more concentrated.",
            "Regional boards set rules about which grape varieties may carry the name of an appellation.",
            "Frost in late spring can destroy a whole year's crop in a single night.",
        ],
    },
    "archive": {
        "routine": ["The readers collected their boxes at the desk and returned them before the room closed.",
                    "The conservator checked the humidity in the stacks and replaced the faded labels."],
        "intro": [
            "The collection of letters was catalogued by the archivist {person}, who spent two years reading faded ink under a lamp.",
            "The letters had been found in the attic of a merchant's house in {place}.",
            "The state archive filed the whole collection under the shelfmark {code}.",
            "The collection holds {number} letters written over half a century.",
            "{person} noticed that the same hand had written most of the later letters.",
        ],
        "use": [
            "Historians who use the letters still cite the careful notes of {person} in their footnotes.",
            "Some of the letters describe the floods that once reached the market square of {place}.",
            "Readers must request the shelfmark {code} at the desk and wear cotton gloves.",
            "A digital edition of all {number} letters will be published next year.",
        ],
        "background": [
            "Paper made from rags lasts far longer than the cheap wood-pulp paper of later centuries.",
            "Archivists keep documents in boxes free of acid, in rooms with steady humidity.",
            "Private letters reveal details of daily life that official records leave out.",
            "Handwriting changes over a lifetime, which helps scholars date undated pages.",
            "Many collections reach archives by chance, when an old house is cleared.",
            "Catalogues let researchers find a single letter among millions of pages.",
        ],
    },
    "bridge": {
        "routine": ["The inspectors walked the deck in the morning and wrote down the state of the railings.",
                    "The cleaners swept the leaves from the ramps and emptied the bins at both ends."],
        "intro": [
            "The footbridge was designed by the architect {person}, known for slender structures of timber and steel.",
            "It crosses the river at {place}, linking the old mill to the railway station.",
            "The heritage office listed the bridge as structure {code} soon after it opened.",
            "Its deck rests on {number} laminated timber beams bolted to two steel arches.",
            "{person} tested scale models of the bridge in a wind tunnel before construction began.",
        ],
        "use": [
            "The award committee praised {person} for a design that seems to float above the water.",
            "Commuters from {place} now reach the station in less than ten minutes.",
            "Any repair must be approved by the heritage office, which cites the listing {code} in its permits.",
            "Inspectors check all {number} beams every spring after the floods.",
        ],
        "background": [
            "Timber bridges need careful detailing so that rainwater never sits on the wood.",
            "Wind can make light bridges sway, so engineers study their shape before building them.",
            "Arches carry loads by compression, which suits both stone and steel.",
            "Footbridges often become landmarks because people cross them slowly and look around.",
            "Rivers in the region flood in spring, when the snow melts in the hills.",
            "Steel parts are painted or galvanised to protect them from rust.",
        ],
    },
}

# Framing sentences that fit any of the domains: a report's opening and closing remarks.
FRAMING = [
    "This account was put together from interviews, field notes and the public records that were available at the time of writing.",
    "Readers who want the full technical details will find them in the appendix, which is kept separately from this summary.",
    "Much of what follows was first shared at a meeting of the local history society, where it prompted a long discussion.",
    "The summary below is meant for a general audience and leaves out most of the measurements.",
    "Several people who took part were kind enough to read an early draft and correct a number of small mistakes.",
    "What makes the story worth telling is less any single discovery than the patient work of many hands over many seasons.",
    "The regional newsletter asked for a short piece on the project, and this text grew out of that request.",
    "Questions about the material can be sent to the society, which keeps a copy of every letter it receives.",
]

# Openings of the roots' logs. They appear in no source or distractor: a sentence shared
# with the pool would be copied from any chunk that holds it, and its opening tokens (the
# most uncertain of a document) would verify against look-alikes as well as the source.
LOG_OPENINGS = [
    "What follows is the day book kept on site, copied out without corrections.",
    "The entries below were transcribed from a logbook kept by the staff on duty.",
    "This is the duty log for the season, one line for each working day.",
    "Below is the working diary as it was kept, with the routine entries left in.",
]

FACT_SLOTS = ("person", "place", "code", "number")
LOG_LABELS = ["Day", "Entry", "Week", "Shift", "Visit", "Round", "Session", "Watch", "Item",
              "Note", "Stage", "Log"]
ROOT_LOG_DAYS = 16  # entries in a root's log; four of them use the planted facts


@dataclass(frozen=True)
class PlantedDoc:
    source_id: str
    role: str  # source | root | distractor
    domain: str
    text: str


def _render(sentences: list[str], facts: Facts) -> str:
    return " ".join(s.format(**facts.__dict__) for s in sentences)


def _paragraphs(rng: random.Random, sentences: list[str]) -> str:
    """Group sentences into paragraphs of two to four sentences."""
    out, i = [], 0
    while i < len(sentences):
        n = rng.randint(2, 4)
        out.append(" ".join(sentences[i:i + n]))
        i += n
    return "\n\n".join(out)


def _introducing_doc(rng: random.Random, domain: dict[str, list[str]], facts: Facts) -> str:
    """Source-style text: background prose interleaved with the sentences that introduce."""
    intro = [s.format(**facts.__dict__) for s in domain["intro"]]
    background = rng.sample(domain["background"], k=4)
    frame = rng.sample(FRAMING, k=3)
    sentences = [frame[0], intro[0], background[0], intro[1], background[1], intro[2],
                 frame[1], intro[3], background[2], intro[4], background[3], frame[2]]
    return _paragraphs(rng, sentences)


def _using_doc(rng: random.Random, domain: dict[str, list[str]], facts: Facts,
               routine: str) -> str:
    """Root-style text: a day-by-day log whose routine entries repeat, with the facts used
    (never introduced) in four of the entries.

    The repetition is the point: after a couple of entries the scorer predicts the routine
    almost exactly, so what stays uncertain in a root is what only its source can explain.
    With free prose a small scorer is about as unsure of every content word as of an
    invented name, and the planted spans would not stand out as anchors. Roots of the same
    domain get different routines, so one root's log does not retrieve another's.
    """
    uses = [s.format(**facts.__dict__) for s in domain["use"]]
    rng.shuffle(uses)
    days = ROOT_LOG_DAYS
    fact_days = sorted(rng.sample(range(3, days + 1), k=len(uses)))
    entries = dict(zip(fact_days, uses, strict=True))
    label = rng.choice(LOG_LABELS)
    log = "\n".join(f"{label} {d}. {entries.get(d, routine)}" for d in range(1, days + 1))
    return f"{rng.choice(LOG_OPENINGS)}\n\n{log}"


def _first_spans(text: str, facts: Facts) -> list[tuple[str, str, int, int]]:
    spans = []
    for slot in FACT_SLOTS:
        surface = getattr(facts, slot)
        match = re.search(rf"(?<![\w-]){re.escape(surface)}(?![\w-])", text)
        if match is None:
            raise AssertionError(f"planted {slot} {surface!r} missing from root text")
        spans.append((slot, surface, match.start(), match.end()))
    return spans


def generate(seed: int = 0, n_stories: int = 12, n_distractors: int = 12,
             corpus: str = "planted", pool_corpus: str | None = None
             ) -> tuple[list[PlantedDoc], list[dict]]:
    """Documents (sources, roots, distractors; shuffled) and the ground-truth rows.

    ``corpus`` names the corpus the roots are ingested into and ``pool_corpus`` the one that
    holds sources and distractors (the same corpus when None); doc ids depend on both.
    """
    pool_corpus = pool_corpus or corpus
    rng = random.Random(seed)
    names = sorted(DOMAINS)
    used: set[str] = set()

    def fresh_facts() -> Facts:
        while True:
            facts = invent_facts(rng)
            keys = {facts.person, facts.place, facts.code}
            if not keys & used and facts.person.split()[1] not in used:
                used.update(keys | {facts.person.split()[1]})
                return facts

    docs: list[PlantedDoc] = []
    truth: list[dict] = []
    for i in range(n_stories):
        domain_name = names[i % len(names)]
        domain = DOMAINS[domain_name]
        facts = fresh_facts()
        routines = domain["routine"]
        routine = routines[(i // len(names)) % len(routines)]
        src = PlantedDoc(f"planted-source-{i:05d}", "source", domain_name,
                         _introducing_doc(rng, domain, facts))
        root = PlantedDoc(f"planted-root-{i:05d}", "root", domain_name,
                          _using_doc(rng, domain, facts, routine))
        docs += [src, root]
        for kind, surface, start, end in _first_spans(root.text, facts):
            truth.append({"root_doc_id": doc_id(corpus, root.source_id, root.text),
                          "source_doc_id": doc_id(pool_corpus, src.source_id, src.text),
                          "kind": kind, "surface": surface, "char_start": start,
                          "char_end": end})
    for j in range(n_distractors):
        domain_name = names[j % len(names)]
        docs.append(PlantedDoc(f"planted-distractor-{j:05d}", "distractor", domain_name,
                               _introducing_doc(rng, DOMAINS[domain_name], fresh_facts())))
    rng.shuffle(docs)
    return docs, truth
