"""The `realistic` demo corpus: planted dependencies in free prose, in one corpus.

Why a second planted corpus: the `planted` demo shapes its roots as day-by-day logs (so the
scorer predicts everything but the facts) and keeps them in a corpus of their own (so they
cannot retrieve each other). A corpus someone brings has neither property. Here roots,
their sources and same-topic distractors live in ONE corpus (``roles: [root, pool]``), every
document is free prose, and a configurable share of sentences and lines recurs across
documents (navigation lines, disclaimers, quoted passages), as on the web.

Four template families with their own style and facts, so that no result is tuned to one
shape: ``news`` (local news report), ``encyclopedia`` (reference article with sections),
``support`` (a product knowledge-base page) and ``travel`` (a first-person blog post).
A *story* invents facts of five kinds (``person``, ``place``, ``code``, ``year``, ``org``);
its *source* introduces all of them, its *root* (a later text of the same family) uses
``facts_per_root`` of them without introducing them. *Distractors* are source-style texts
of the same family about other invented facts. Prose sentences are drawn from a grammar
(templates x word lists), so fresh prose almost never repeats; boilerplate repeats by design.

API (deterministic from ``seed``; same arguments, same bytes):

* ``generate(seed=0, n_roots=24, n_distractors=24, facts_per_root=4, boilerplate=0.2,
  sentences=12, families=None, corpus="realistic") -> (docs, truth)``: ``docs`` is a list
  of ``RealisticDoc(source_id, role, domain, text)`` with role ``root | source |
  distractor``, shuffled; ``truth`` holds one row per planted fact in the GROUND_TRUTH
  schema (``root_doc_id``, ``source_doc_id``, ``kind``, ``surface``, ``char_start``,
  ``char_end``: the first occurrence of ``surface`` in the root's text; doc ids are
  ``lakehouse.ids.doc_id(corpus, source_id, text)``).
* ``lookalike_docs(seed, n_docs, families=None, unrelated=0.25, boilerplate=0.2,
  sentences=12, avoid=()) -> list[RealisticDoc]``: a look-alike pool at any size (thousands
  to tens of thousands of documents in seconds): documents of the same families and
  templates (role ``lookalike``, source- and root-style) with other invented entities, plus
  ``unrelated`` share of prose of other topics (role ``unrelated``). No entity in ``avoid``
  (e.g. the planted corpus's surfaces, ``{r["surface"] for r in truth}``) and no entity of
  ``generate(seed)`` appears. Ids ``realistic-lookalike-<seed>-<i>``.
* ``lakehouse.demo.write_realistic`` writes it as a pipeline corpus: pipeline.yaml
  ``demo: {kind: realistic, seed: 0, n_roots: 24, n_distractors: 24, facts_per_root: 4,
  boilerplate: 0.2, sentences: 12, n_lookalikes: 0, n_shards: 2, inject_bad_rows: false}``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lakehouse.ids import doc_id

FACT_KINDS = ("person", "place", "code", "year", "org")

FIRST_NAMES = ["Marta", "Jonas", "Ingrid", "Tomas", "Leila", "Rafael", "Noor", "Elena",
               "Piotr", "Amara", "Henrik", "Sofia", "Dmitri", "Yara", "Callum", "Ines",
               "Mateo", "Freya", "Anselm", "Rosa", "Kenji", "Talia", "Bruno", "Maren"]
_ONSETS = ["qu", "v", "th", "z", "k", "dr", "br", "m", "sel", "t", "gr", "h", "n", "or", "l",
           "w", "st", "c", "f", "p"]
_VOWELS = ["a", "o", "e", "i", "au", "ae", "y", "u", "ei", "ou"]
_CODAS = ["rv", "th", "nd", "ss", "lk", "rn", "x", "m", "sk", "lv", "dr", "nt", "r", "ll",
          "g", "b"]
_SURNAME_ENDS = ["ath", "ey", "ion", "or", "aine", "ulf", "ess", "ard", "isk", "enne", "off",
                 "ano", "elli", "sen"]
_PLACE_ENDS = ["moor", "holt", "vane", "mere", "stead", "ford", "crest", "wick", "by",
               "dale", "haven", "brook"]
_ORG_ENDS = ["en", "ar", "ix", "ora", "ant", "el", "um", "is"]
_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"


def _word(rng: random.Random, endings: list[str], syllables: int) -> str:
    body = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables))
    return (body + rng.choice(endings)).capitalize()


def _code(rng: random.Random, style: str) -> str:
    letters = "".join(rng.choice(_LETTERS) for _ in range(3))
    if style == "news":  # a planning application
        return f"{letters[:2]}/{rng.randint(1000, 9999)}"
    if style == "encyclopedia":  # a manuscript shelfmark
        return f"MS {rng.randint(100, 999)}{letters[0].lower()}"
    if style == "support":  # an error code
        return f"E{rng.randint(10, 99)}-{letters}{rng.randint(1, 9)}"
    return f"{letters[:2]}-{rng.randint(10, 99)}"  # travel: a trail number


ORG_SUFFIX = {"news": "Community Trust", "encyclopedia": "Institute", "support": "Systems",
              "travel": "Guesthouse", "other": "Society"}


@dataclass(frozen=True)
class Facts:
    person: str
    place: str
    code: str
    year: str
    org: str

    def surfaces(self) -> set[str]:
        """The strings that must stay unique to their story (years may repeat)."""
        return {self.person, self.person.split()[-1], self.place, self.code, self.org}


def invent_facts(rng: random.Random, family: str) -> Facts:
    person = f"{rng.choice(FIRST_NAMES)} {_word(rng, _SURNAME_ENDS, rng.choice((1, 2)))}"
    place = _word(rng, _PLACE_ENDS, rng.choice((1, 2)))
    org = f"{_word(rng, _ORG_ENDS, rng.choice((1, 2)))} {ORG_SUFFIX[family]}"
    return Facts(person, place, _code(rng, family), str(rng.randint(1820, 1990)), org)


# --- the grammar of each family ------------------------------------------------------------
# prose: sentence templates whose [slot]s are filled from words[slot]; intro[kind]: sentences
# that introduce a fact (sources, distractors); use[kind]: sentences that use it as known
# (roots); head/tail: boilerplate lines; inline: boilerplate sentences inside paragraphs.

FAMILIES: dict[str, dict] = {
    "news": {
        "words": {
            "group": ["residents", "parents", "shop owners", "local farmers", "volunteers",
                      "councillors", "commuters", "pensioners", "teachers", "neighbours"],
            "thing": ["the footpath", "the old library", "the bus shelter", "the market hall",
                      "the flood barrier", "the car park", "the primary school", "the bridge",
                      "the sports field", "the village green", "the health centre"],
            "issue": ["parking", "traffic on the high street", "the cost of repairs",
                      "the noise at night", "the loss of green space", "rising rents",
                      "the closure of the post office", "litter near the river"],
            "verb": ["welcomed", "questioned", "criticised", "supported", "debated",
                     "praised", "opposed", "discussed"],
            "time": ["last week", "on Tuesday evening", "earlier this month", "in the spring",
                     "over the weekend", "at the latest meeting", "since the winter"],
            "feel": ["cautiously optimistic", "frustrated", "relieved", "divided",
                     "surprised", "encouraged", "unconvinced"],
            "body": ["the parish council", "the county planners", "the school governors",
                     "the residents' association", "the highways department"],
        },
        "prose": [
            "Many [group] said they were [feel] about the plans for [thing].",
            "The proposal was [verb] by [body] [time], after months of consultation.",
            "Some [group] raised concerns about [issue] [time].",
            "A spokesperson for [body] said the work on [thing] would begin once funding was "
            "secured.",
            "[group] have long complained about [issue] and the state of [thing].",
            "At a packed meeting [time], [group] [verb] the latest figures.",
            "Officials admitted that [issue] had not been considered when [thing] was first "
            "planned.",
            "The debate over [thing] has left many [group] [feel].",
            "Several [group] wrote to [body] to ask how [issue] would be handled.",
            "It is not the first time that [thing] has divided [group] in the area.",
            "According to [body], the changes to [thing] should reduce [issue].",
            "Those who attended [time] described the mood among [group] as [feel].",
        ],
        "intro": {
            "person": ["The campaign was started by {person}, a retired engineer who has lived "
                       "in the area for most of her life.",
                       "Its chair, {person}, first proposed the idea in a letter to the local "
                       "paper."],
            "place": ["The scheme covers the small village of {place}, on the edge of the "
                      "river valley.",
                      "Most of the work will take place in {place}, a hamlet of a few hundred "
                      "homes."],
            "code": ["The plans were lodged with the council as application {code}.",
                     "Documents filed under reference {code} show the full design."],
            "year": ["The original building dates from {year}, when it served as a grain "
                     "store.",
                     "The group was founded in {year} by a handful of local families."],
            "org": ["The project is being run by the {org}, a charity set up to look after "
                    "local buildings.",
                    "Funding comes mainly from the {org}, which raised the money through small "
                    "donations."],
        },
        "use": {
            "person": ["Speaking after the vote, {person} thanked everyone who had signed the "
                       "petition.",
                       "Many in the room applauded when {person} rose to speak."],
            "place": ["Families in {place} will be the first to see the changes.",
                      "The new path will link {place} to the town centre."],
            "code": ["Objections to application {code} must be submitted by the end of the "
                     "month.",
                     "Councillors approved {code} with only two votes against."],
            "year": ["Few people remember that the building has stood since {year}.",
                     "It is the biggest change to the site since {year}."],
            "org": ["A statement from the {org} said the result was a victory for the whole "
                    "community.",
                    "Volunteers from the {org} will staff the reopened building."],
        },
        "head": ["Home > News > Local > Community", "Local News | Sport | Weather | Opinion",
                 "Listen to this article"],
        "tail": ["Sign up to our morning newsletter to get the day's top stories in your inbox.",
                 "Have a story for us? Contact the newsdesk through our website.",
                 "Comments on this article have been closed.",
                 "This article was amended to correct the spelling of a name."],
        "inline": ["The council did not respond to a request for comment before publication.",
                   "The consultation remains open to anyone who lives or works in the area."],
    },
    "encyclopedia": {
        "words": {
            "field": ["botany", "geology", "medieval history", "astronomy", "linguistics",
                      "cartography", "chemistry", "folk music", "architecture", "zoology"],
            "work": ["a study of river sediments", "a survey of parish records",
                     "a catalogue of alpine plants", "a grammar of a coastal dialect",
                     "a series of star charts", "a history of the wool trade",
                     "a collection of field notes", "a treatise on bridge design"],
            "quality": ["careful", "meticulous", "unconventional", "patient", "ambitious",
                        "influential", "controversial", "widely read"],
            "verb": ["studied", "described", "catalogued", "mapped", "translated", "compared",
                     "documented", "revised"],
            "group": ["later scholars", "contemporary critics", "students", "historians",
                      "fellow researchers", "reviewers", "biographers"],
            "era": ["the late nineteenth century", "the interwar years", "the early modern "
                    "period", "the decades after the war", "the Victorian era"],
        },
        "prose": [
            "The work is regarded as a [quality] contribution to [field].",
            "In [era], interest in [field] grew quickly among amateurs and universities alike.",
            "[group] have described the approach as [quality] and ahead of its time.",
            "The subject [verb] the material in [work], which remained in print for decades.",
            "Much of the early research in [era] focused on [field].",
            "Some [group] questioned the [quality] methods of [work].",
            "The period saw a series of [quality] publications on [field].",
            "By [era] the study of [field] had become a recognised discipline.",
            "[group] often cite [work] as a model of the genre.",
            "Later editions of [work] [verb] several chapters.",
            "[group] know little about the private life of the subject during [era].",
            "The same [quality] methods were soon applied to [field] as well.",
        ],
        "intro": {
            "person": ["{person} was a scholar best known for work in the natural sciences.",
                       "The collection was assembled by {person}, who trained as a surveyor "
                       "before turning to research."],
            "place": ["Born in {place}, a market town in the uplands, the subject attended "
                      "the local grammar school.",
                      "The family home in {place} later housed a small museum."],
            "code": ["The surviving notebooks are kept in the county library as {code}.",
                     "The original manuscript is catalogued as {code}."],
            "year": ["The first volume appeared in {year} and sold out within months.",
                     "The society was founded in {year} with fewer than twenty members."],
            "org": ["From the start the research was supported by the {org}.",
                    "Much of the work was carried out at the {org}, where the subject held "
                    "a fellowship."],
        },
        "use": {
            "person": ["The letters of {person} reveal a wide network of correspondents.",
                       "A portrait of {person} hangs in the main reading room."],
            "place": ["A plaque in {place} marks the house where the notebooks were found.",
                      "Visitors to {place} can still walk the routes described in the text."],
            "code": ["Researchers may consult {code} by appointment in the reading room.",
                     "The pages of {code} were digitised as part of the project."],
            "year": ["An exhibition marked the anniversary of the events of {year}.",
                     "Nothing comparable was published again until long after {year}."],
            "org": ["The archives of the {org} contain several unpublished drafts.",
                    "A prize awarded by the {org} now carries the subject's name."],
        },
        "head": ["From the Community Encyclopedia, the free reference work",
                 "Contents: Early life | Career | Legacy | See also | References"],
        "tail": ["See also: list of regional scholars; history of the natural sciences.",
                 "This page was last edited by a volunteer and may contain errors.",
                 "Text is available under an open licence; additional terms may apply.",
                 "Categories: biographies, local history, science."],
        "inline": ["This section needs additional citations for verification.",
                   "Some of the dates given in older sources are disputed."],
    },
    "support": {
        "words": {
            "device": ["the router", "the printer", "the thermostat", "the camera", "the hub",
                       "the base station", "the tablet", "the sensor"],
            "action": ["restart the device", "check the cable", "update the firmware",
                       "reset the network settings", "clear the cache", "remove the battery",
                       "reconnect the power supply", "sign out and back in"],
            "symptom": ["the light blinks orange", "the screen stays blank", "the connection "
                        "drops", "the app cannot find the device", "updates fail to install",
                        "the device becomes warm", "settings are not saved"],
            "place": ["the settings menu", "the status page", "the mobile app",
                      "the control panel", "the back of the unit", "the quick start guide"],
            "time": ["a few minutes", "about thirty seconds", "several hours", "a full cycle",
                     "the next restart"],
            "group": ["users", "administrators", "customers", "technicians", "owners"],
        },
        "prose": [
            "If [symptom], first [action] and wait [time].",
            "Some [group] report that [symptom] after a power cut.",
            "You can find this option in [place] of [device].",
            "In most cases [group] only need to [action].",
            "Do not [action] while [device] is updating.",
            "[group] who manage several units should use [place] instead.",
            "[group] usually see this when [symptom] during setup.",
            "After you [action], [device] may take [time] to respond.",
            "Check [place] to confirm that [device] is online.",
            "The problem with [device] is more common when [symptom].",
            "If nothing changes after [time], [action] again.",
            "Many [group] never need to open [place] at all.",
        ],
        "intro": {
            "person": ["This guide was written by {person}, who leads the support team for the "
                       "product line.",
                       "The fix was found by {person}, an engineer on the hardware team."],
            "place": ["The affected units were all assembled at the plant in {place}.",
                      "Replacement parts are shipped from the warehouse in {place}."],
            "code": ["When the fault occurs the display shows error {code}.",
                     "The fault is logged under the code {code} in the event history."],
            "year": ["The first units of this model were sold in {year}.",
                     "The original design goes back to a prototype built in {year}."],
            "org": ["The device is made by {org}, which also publishes the firmware.",
                    "Repairs are handled by {org}, the manufacturer's service partner."],
        },
        "use": {
            "person": ["If the steps above do not help, ask for {person} when you call.",
                       "The notes from {person} cover a few rarer cases as well."],
            "place": ["Units that came from {place} may need the newer power supply.",
                      "Returns are processed at the centre in {place} within a week."],
            "code": ["If {code} appears again after the reset, contact support.",
                     "Write down {code} before you call so the agent can find your case."],
            "year": ["Models sold before {year} cannot install this update.",
                     "The old connector was used on every unit until {year}."],
            "org": ["Only parts approved by {org} keep the warranty valid.",
                    "Firmware downloads are signed by {org}."],
        },
        "head": ["Help Centre > Devices > Troubleshooting",
                 "Products | Downloads | Community | Contact us"],
        "tail": ["Was this article helpful? Yes | No",
                 "Still need help? Our support team is available seven days a week.",
                 "Disclaimer: following these steps does not affect your statutory rights.",
                 "Related articles: setting up your device; updating the firmware."],
        "inline": ["Always unplug the device before you open the cover.",
                   "Keep your proof of purchase in case a replacement is needed."],
    },
    "travel": {
        "words": {
            "sight": ["the harbour", "the old chapel", "the ridge path", "the covered market",
                      "the waterfall", "the lighthouse", "the town walls", "the vineyards",
                      "the stone bridge", "the cliff top"],
            "food": ["fresh bread", "grilled fish", "a bowl of soup", "local cheese",
                     "plum cake", "strong coffee", "a plate of olives", "mushroom stew"],
            "feel": ["tired but happy", "completely soaked", "a little lost", "hungry",
                     "glad we had come", "out of breath", "in no hurry to leave"],
            "time": ["early in the morning", "after lunch", "just before sunset",
                     "on our second day", "late in the afternoon", "on the last evening"],
            "weather": ["the rain finally stopped", "a cold wind came off the sea",
                        "the fog lifted", "the sun came out", "clouds rolled in from the hills"],
            "people": ["the locals", "other walkers", "the families at the next table",
                       "a group of cyclists", "the fishermen", "the shopkeepers"],
        },
        "prose": [
            "We reached [sight] [time], just as [weather].",
            "By the time we got back from [sight] we were [feel].",
            "Nothing beats [food] after a long walk, and the cafe by [sight] served plenty.",
            "[people] at [sight] were friendly and happy to point us the right way.",
            "We spent longer than planned at [sight], mostly because [weather].",
            "If you only have one day, I would start with [sight] [time].",
            "I still think about the [food] we had [time].",
            "The walk to [sight] is steep in places, so take [food] and water.",
            "[people] told us that the best views come [time].",
            "Honestly, we were [feel] when we finally sat down for [food].",
            "The path past [sight] was quiet, apart from [people].",
            "We took far too many photos of [sight] [time].",
        ],
        "intro": {
            "person": ["Our guide for the week was {person}, who grew up in the valley and "
                       "knows every path.",
                       "We booked the walk with {person}, a former teacher who now leads small "
                       "groups."],
            "place": ["We stayed in {place}, a fishing village at the end of a long bay.",
                      "The walk starts in {place}, a cluster of stone houses above the river."],
            "code": ["The route is waymarked as trail {code} on the regional map.",
                     "Look for the signs for {code}, painted on rocks along the way."],
            "year": ["The inn has been run by the same family since {year}.",
                     "The chapel at the top was rebuilt in {year} after a storm."],
            "org": ["We stayed at the {org}, a converted farmhouse with six rooms.",
                    "Breakfast at the {org} was the best of the whole trip."],
        },
        "use": {
            "person": ["On the last night {person} took us to a tiny bar by the harbour.",
                       "I would go back just to walk again with {person}."],
            "place": ["The bus back to {place} leaves only twice a day, so plan ahead.",
                      "We walked down to {place} for one last swim."],
            "code": ["Part of {code} was closed for repairs, so we took the road instead.",
                     "The second half of {code} is the steepest."],
            "year": ["The owners still keep the guest book that starts in {year}.",
                     "A carved stone over the door shows the date {year}."],
            "org": ["We have already booked another week at the {org}.",
                    "The owners of the {org} packed us lunch every day."],
        },
        "head": ["Blog | About | Destinations | Packing lists | Contact",
                 "This post may contain affiliate links, which help keep the blog running."],
        "tail": ["Pin it for later and share it with a friend who loves walking!",
                 "Leave a comment below if you have any questions about the route.",
                 "All photos are my own; please ask before using them.",
                 "Subscribe for new posts every fortnight."],
        "inline": ["As always, check the local forecast before you set out.",
                   "Prices were correct at the time of writing but change often."],
    },
}

# Quoted passages any family may carry (a charter, a proverb, a popular line).
QUOTES = [
    "As the old saying goes, a place is only as good as the people who look after it.",
    "In the words of one early visitor, \"the light here changes by the minute, and so does "
    "the mood.\"",
    "\"Small things done well add up to large things,\" as the founding charter puts it.",
    "One reader summed it up neatly: \"slow, careful and worth every minute.\"",
]

# Prose of other topics, for the look-alike pool's unrelated documents.
OTHER = {
    "words": {
        "dish": ["the soup", "the sauce", "the dough", "the salad", "the stew", "the pie"],
        "step": ["stir gently", "add a pinch of salt", "let it rest", "cover the pan",
                 "taste as you go", "chop the herbs finely", "warm the oven"],
        "plant": ["the roses", "the tomatoes", "the hedge", "the seedlings", "the lawn",
                  "the fruit trees", "the herbs"],
        "season": ["in early spring", "in midsummer", "after the first frost",
                   "in late autumn", "during a dry spell"],
        "verb": ["prefer", "recommend", "avoid", "swear by", "rarely bother with"],
        "people": ["most gardeners", "experienced cooks", "beginners", "my neighbours",
                   "many readers"],
    },
    "prose": [
        "For [dish], [step] and then [step].",
        "[people] [verb] watering [plant] [season].",
        "Prune [plant] [season] to encourage new growth.",
        "If [dish] looks too thick, [step].",
        "[people] [verb] feeding [plant] more than once a month.",
        "Once [dish] is ready, [step] before serving.",
        "Mulch around [plant] [season] to keep the roots moist.",
        "[people] find that [dish] tastes better the next day.",
        "Do not forget to [step] when making [dish].",
        "[plant] need more light [season] than you might expect.",
    ],
}

_SLOT = re.compile(r"\[(\w+)\]")


OPENERS = {
    "news": ["However, ", "Meanwhile, ", "At the same time, ", "For now, ", "Even so, ",
             "In recent months, ", "Locally, ", "As expected, ", "Perhaps unsurprisingly, ",
             "On the other hand, ", "Until then, ", "In the meantime, "],
    "encyclopedia": ["However, ", "In particular, ", "At the time, ", "Later, ",
                     "In addition, ", "According to some accounts, ", "Even so, ",
                     "By contrast, ", "In general, ", "As a result, ", "Notably, ",
                     "For this reason, "],
    "support": ["Note: ", "Tip: ", "In some cases, ", "If needed, ", "Alternatively, ",
                "Before you continue, ", "As a rule, ", "Occasionally, ", "Otherwise, ",
                "On older units, ", "For best results, ", "Important: "],
    "travel": ["Honestly, ", "To be fair, ", "Luckily, ", "Of course, ", "Looking back, ",
               "Best of all, ", "Somehow, ", "Either way, ", "In the end, ", "As it turned "
               "out, ", "Sadly, ", "Still, "],
    "other": ["In general, ", "Usually, ", "If you can, ", "As a rule, ", "Ideally, ",
              "For a change, ", "Often, ", "Where possible, "],
}
OPENER_SHARE = 0.4  # prose sentences that start with a discourse marker


def _sentence(rng: random.Random, template: str, words: dict[str, list[str]],
              openers: Sequence[str]) -> str:
    s = _SLOT.sub(lambda m: rng.choice(words[m.group(1)]), template)
    if rng.random() < OPENER_SHARE:
        return rng.choice(openers) + (s if s.startswith("I ") else s[0].lower() + s[1:])
    return s[0].upper() + s[1:]


def _templates(rng: random.Random, templates: Sequence[str], n: int) -> list[str]:
    """``n`` templates, each used once before any repeats (a document does not say the same
    kind of thing twice in a row)."""
    out: list[str] = []
    while len(out) < n:
        batch = list(templates)
        rng.shuffle(batch)
        out.extend(batch)
    return out[:n]


@dataclass(frozen=True)
class RealisticDoc:
    source_id: str
    role: str  # root | source | distractor | lookalike | unrelated
    domain: str  # the template family
    text: str


def _layout(rng: random.Random, family: dict, body: list[str], boilerplate: float) -> str:
    """Paragraphs of 2-4 sentences, with boilerplate head/tail lines and inline sentences.

    Each prose slot is replaced by an inline boilerplate sentence or a quote with probability
    ``boilerplate``; a head and a tail line are added each with that probability (times 2,
    capped at 1), so the share of recurring units is close to ``boilerplate``.
    """
    out = body
    lines: list[str] = []
    p_line = min(1.0, 2 * boilerplate)
    if rng.random() < p_line:
        lines.append(rng.choice(family["head"]))
    paras, i = [], 0
    while i < len(out):
        n = rng.randint(2, 4)
        paras.append(" ".join(out[i:i + n]))
        i += n
    lines.extend(paras)
    if rng.random() < p_line:
        lines.append(rng.choice(family["tail"]))
    return "\n\n".join(lines)


def _prose(rng: random.Random, family_name: str, n: int, boilerplate: float) -> list[str]:
    """``n`` prose units: fresh grammar sentences, a ``boilerplate`` share of them replaced
    by recurring ones (the family's inline lines and the shared quotes, no repeats within a
    document)."""
    fam = FAMILIES[family_name] if family_name in FAMILIES else OTHER
    recurring = list(fam.get("inline", [])) + QUOTES
    rng.shuffle(recurring)
    out = []
    for template in _templates(rng, fam["prose"], n):
        if recurring and rng.random() < boilerplate:
            out.append(recurring.pop())
        else:
            out.append(_sentence(rng, template, fam["words"], OPENERS[family_name]))
    return out


def _with_facts(rng: random.Random, prose: list[str], fact_sentences: list[str],
                first_after: int) -> list[str]:
    """Insert the fact sentences at random places after the first ``first_after`` units."""
    body = list(prose)
    slots = sorted(rng.sample(range(first_after, len(body) + 1), k=len(fact_sentences)))
    for offset, (slot, s) in enumerate(zip(slots, fact_sentences, strict=True)):
        body.insert(slot + offset, s)
    return body


def source_text(rng: random.Random, family_name: str, facts: Facts, sentences: int,
                boilerplate: float) -> str:
    """A source-style document: the family's prose with a sentence introducing each fact."""
    fam = FAMILIES[family_name]
    intro = [rng.choice(fam["intro"][k]).format(**facts.__dict__) for k in FACT_KINDS]
    rng.shuffle(intro)
    body = _with_facts(rng, _prose(rng, family_name, sentences, boilerplate), intro, 0)
    return _layout(rng, fam, body, boilerplate)


def root_text(rng: random.Random, family_name: str, facts: Facts, kinds: Sequence[str],
              sentences: int, boilerplate: float) -> str:
    """A root-style document: the family's prose using the facts of ``kinds`` as known."""
    fam = FAMILIES[family_name]
    uses = [rng.choice(fam["use"][k]).format(**facts.__dict__) for k in kinds]
    rng.shuffle(uses)
    body = _with_facts(rng, _prose(rng, family_name, sentences, boilerplate), uses,
                       min(2, sentences))
    return _layout(rng, fam, body, boilerplate)


def _first_span(text: str, surface: str) -> tuple[int, int]:
    m = re.search(rf"(?<![\w/-]){re.escape(surface)}(?![\w/-])", text)
    if m is None:
        raise AssertionError(f"planted fact {surface!r} missing from the root text")
    return m.start(), m.end()


class _FactPool:
    """Fresh facts whose unique surfaces never repeat.

    Exact repeats are refused against everything drawn so far and ``avoid``; substring
    clashes (a place that is inside another story's surname) against ``strict``, a small set
    (the planted corpus's surfaces), which keeps 20K look-alike draws fast.
    """

    def __init__(self, rng: random.Random, avoid: Iterable[str] = (),
                 strict: Iterable[str] | None = None):
        self.rng = rng
        self.used: set[str] = set(avoid)
        self.strict: set[str] | None = None if strict is None else set(strict)

    def draw(self, family: str) -> Facts:
        while True:
            facts = invent_facts(self.rng, family)
            keys = facts.surfaces()
            if keys & self.used:
                continue
            against = self.used if self.strict is None else self.strict
            if any(k in u or u in k for k in keys for u in against):
                continue
            self.used |= keys
            return facts


def _families(families: Sequence[str] | None) -> list[str]:
    names = list(families) if families else sorted(FAMILIES)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown template families {unknown}; known: {sorted(FAMILIES)}")
    return names


def generate(seed: int = 0, n_roots: int = 24, n_distractors: int = 24,
             facts_per_root: int = 4, boilerplate: float = 0.2, sentences: int = 12,
             families: Sequence[str] | None = None, corpus: str = "realistic"
             ) -> tuple[list[RealisticDoc], list[dict]]:
    """Roots, sources and distractors (shuffled) and the ground truth (see module docstring).

    Story i uses family ``families[i % len(families)]``; its root uses ``facts_per_root``
    kinds drawn per story. Distractors cycle through the families the same way.
    """
    docs, truth, _ = _generate(seed, n_roots, n_distractors, facts_per_root, boilerplate,
                               sentences, families, corpus)
    return docs, truth


def _generate(seed: int, n_roots: int, n_distractors: int, facts_per_root: int,
              boilerplate: float, sentences: int, families: Sequence[str] | None,
              corpus: str) -> tuple[list[RealisticDoc], list[dict], set[str]]:
    if not 1 <= facts_per_root <= len(FACT_KINDS):
        raise ValueError(f"facts_per_root must be in [1, {len(FACT_KINDS)}]")
    if not 0 <= boilerplate < 1:
        raise ValueError("boilerplate must be in [0, 1)")
    names = _families(families)
    rng = random.Random(f"realistic-{seed}")
    pool = _FactPool(rng)
    docs: list[RealisticDoc] = []
    truth: list[dict] = []
    for i in range(n_roots):
        fam = names[i % len(names)]
        facts = pool.draw(fam)
        kinds = sorted(rng.sample(FACT_KINDS, k=facts_per_root), key=FACT_KINDS.index)
        src = RealisticDoc(f"realistic-source-{i:05d}", "source", fam,
                           source_text(rng, fam, facts, sentences, boilerplate))
        root = RealisticDoc(f"realistic-root-{i:05d}", "root", fam,
                            root_text(rng, fam, facts, kinds, sentences, boilerplate))
        docs += [src, root]
        for kind in kinds:
            surface = getattr(facts, kind)
            start, end = _first_span(root.text, surface)
            truth.append({"root_doc_id": doc_id(corpus, root.source_id, root.text),
                          "source_doc_id": doc_id(corpus, src.source_id, src.text),
                          "kind": kind, "surface": surface, "char_start": start,
                          "char_end": end})
    for j in range(n_distractors):
        fam = names[j % len(names)]
        docs.append(RealisticDoc(f"realistic-distractor-{j:05d}", "distractor", fam,
                                 source_text(rng, fam, pool.draw(fam), sentences,
                                             boilerplate)))
    rng.shuffle(docs)
    return docs, truth, pool.used


def lookalike_docs(seed: int, n_docs: int, families: Sequence[str] | None = None,
                   unrelated: float = 0.25, boilerplate: float = 0.2, sentences: int = 12,
                   avoid: Iterable[str] = ()) -> list[RealisticDoc]:
    """A look-alike retrieval pool: same families and templates, other invented entities.

    ``1 - unrelated`` of the documents are look-alikes (two thirds source-style, one third
    root-style, each with a fresh set of facts), the rest prose of other topics. Entities
    never equal a string of ``avoid`` nor an entity of ``generate(seed)`` with default sizes
    (pass the planted corpus's surfaces in ``avoid`` when it was generated otherwise).
    Deterministic for (seed, n_docs, ...); document i does not depend on n_docs.
    """
    names = _families(families)
    rng = random.Random(f"realistic-lookalike-{seed}")
    banned = set(avoid) | _default_surfaces(seed)
    pool = _FactPool(rng, banned, strict=banned)
    out = []
    for i in range(n_docs):
        sid = f"realistic-lookalike-{seed}-{i:06d}"
        if rng.random() < unrelated:
            body = _prose(rng, "other", sentences + rng.randint(-2, 2), 0.0)
            paras = [" ".join(body[k:k + 3]) for k in range(0, len(body), 3)]
            out.append(RealisticDoc(sid, "unrelated", "other", "\n\n".join(paras)))
            continue
        fam = names[i % len(names)]
        facts = pool.draw(fam)
        if rng.random() < 2 / 3:
            text = source_text(rng, fam, facts, sentences, boilerplate)
        else:
            kinds = sorted(rng.sample(FACT_KINDS, k=4), key=FACT_KINDS.index)
            text = root_text(rng, fam, facts, kinds, sentences, boilerplate)
        out.append(RealisticDoc(sid, "lookalike", fam, text))
    return out


_DEFAULT_SURFACES: dict[int, frozenset[str]] = {}


def _default_surfaces(seed: int) -> frozenset[str]:
    """Unique entity strings of generate(seed) at its default sizes (cached per seed)."""
    if seed not in _DEFAULT_SURFACES:
        _DEFAULT_SURFACES[seed] = frozenset(_generate(seed, 24, 24, 4, 0.2, 12, None,
                                                      "realistic")[2])
    return _DEFAULT_SURFACES[seed]
