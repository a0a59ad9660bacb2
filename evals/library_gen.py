"""A generated running library of any size, for the scale benchmark and the scale tests.

Articles are composed, not copied: each draws its subject, sections, sentence shapes, claims, denials,
training frequencies and exercises from vocabularies with a seeded random generator, so a thousand
articles differ in their words and in what they assert, and the disagreement map has real work (sources
that deny what others assert, prescriptions at different frequencies). Some captures carry page furniture
and reader comments, as real ones do. Nothing here is medical advice: it is text shaped like a library.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = [
    ("hill sprints", "hill sprint"),
    ("tempo runs", "tempo run"),
    ("easy runs", "easy run"),
    ("strength training", "strength session"),
    ("plyometric drills", "plyometric session"),
    ("foam rolling", "foam rolling session"),
    ("static stretching", "stretching session"),
    ("cadence drills", "cadence session"),
    ("long runs", "long run"),
    ("interval sessions", "interval session"),
    ("cross-training", "cross-training session"),
    ("barefoot running", "barefoot run"),
    ("compression socks", "compression session"),
    ("ice baths", "ice bath"),
    ("sports massage", "massage"),
    ("yoga classes", "yoga class"),
    ("trail running", "trail run"),
    ("track workouts", "track workout"),
    ("core exercises", "core session"),
    ("balance training", "balance session"),
    ("downhill running", "downhill run"),
    ("treadmill running", "treadmill run"),
    ("fartlek sessions", "fartlek session"),
    ("recovery jogs", "recovery jog"),
]
# (third person, base form) so a sentence can assert it and another deny it.
OUTCOMES = [
    ("prevents knee pain", "prevent knee pain"),
    ("reduces the risk of shin splints", "reduce the risk of shin splints"),
    ("improves running economy", "improve running economy"),
    ("builds aerobic endurance", "build aerobic endurance"),
    ("strengthens the hips", "strengthen the hips"),
    ("speeds up recovery", "speed up recovery"),
    ("protects the Achilles tendon", "protect the Achilles tendon"),
    ("makes you faster over ten kilometres", "make you faster over ten kilometres"),
    ("lowers the chance of a stress fracture", "lower the chance of a stress fracture"),
    ("eases tight calves", "ease tight calves"),
    ("fixes overstriding", "fix overstriding"),
    ("improves hip stability", "improve hip stability"),
    ("reduces delayed muscle soreness", "reduce delayed muscle soreness"),
    ("raises your lactate threshold", "raise your lactate threshold"),
    ("helps with plantar fasciitis", "help with plantar fasciitis"),
    ("keeps the pelvis level", "keep the pelvis level"),
]
GROUPS = [
    "new runners",
    "masters runners",
    "marathoners",
    "trail runners",
    "high school athletes",
    "recreational runners",
    "ultra runners",
    "runners over fifty",
    "sprinters",
    "club runners",
]
BODY = [
    "the calves",
    "the hamstrings",
    "the quadriceps",
    "the glutes",
    "the hip flexors",
    "the Achilles tendon",
    "the plantar fascia",
    "the iliotibial band",
    "the tibia",
    "the knee cap",
    "the lower back",
    "the ankles",
]
CONDITIONS = [
    "mileage climbs too quickly",
    "you run every session too hard",
    "sleep is short for several nights",
    "the surface changes from grass to concrete",
    "your shoes are worn out",
    "you skip your warm-up",
    "a race is only a week away",
    "the weather turns cold",
    "you add speed work and hills in the same week",
    "you return after a long break",
]
FREQUENCIES = [
    "once a week",
    "twice a week",
    "three times a week",
    "four days a week",
    "five days a week",
    "every day",
    "every other day",
]
EXERCISES = [
    ("calf raises", "rise onto your toes and lower slowly"),
    ("glute bridges", "lie on your back and lift your hips until your body is straight"),
    ("side planks", "hold your body in a straight line on one forearm"),
    ("single leg squats", "bend one knee slowly while keeping it over your toes"),
    ("walking lunges", "step forward and lower your back knee towards the ground"),
    ("clamshells", "lie on your side and open your top knee like a shell"),
    ("step ups", "step onto a box and drive through the front heel"),
    ("tibialis raises", "lean against a wall and lift your toes towards your shins"),
    ("heel drops", "lower yourself slowly on one leg from the edge of a step"),
    ("dead bugs", "lie on your back and lower the opposite arm and leg"),
    ("monster walks", "walk sideways with a band around your knees"),
    ("hip hikes", "stand on a step and lift the hip of the hanging leg"),
]
HEADINGS = [
    "Why it matters",
    "What the research says",
    "How to start",
    "Common mistakes",
    "A sample week",
    "When to back off",
    "What coaches get wrong",
    "The evidence in brief",
    "Putting it into practice",
    "Signs you are overdoing it",
    "Who benefits most",
    "Getting the dose right",
    "Questions runners ask",
    "A word on recovery",
    "Equipment you need",
    "Progressing safely",
]
FURNITURE = [
    "Skip to content",
    "Share this post",
    "We use cookies to improve your experience. Accept cookies and close",
    "Leave a comment",
    "Related posts",
]
OPENERS = [
    "",
    "In our experience, ",
    "For most runners, ",
    "Put simply, ",
    "Over a season, ",
    "Research suggests ",
]


class _Stance:
    """What one article holds: two outcomes it asserts of its subject, sometimes one it denies, and the
    training frequency it prescribes. Its claims come from these, so articles disagree as real ones do:
    now and then, on a few questions, not in every sentence."""

    def __init__(self, rng: random.Random) -> None:
        picked = rng.sample(OUTCOMES, k=3)
        self.asserted = picked[:2]
        self.denied = picked[2] if rng.random() < 0.35 else None
        self.frequency = rng.choice(FREQUENCIES)
        self.prescribed = False


def _sentence(rng: random.Random, subject: tuple[str, str], stance: _Stance) -> str:
    """One sentence in one of many shapes: a claim, a denial, a frequency, a cause, an explanation."""
    name = subject[0]
    third, _base = rng.choice(stance.asserted)
    shape = rng.randrange(12)
    if shape == 0:
        return f"{rng.choice(OPENERS)}{name} {third} for {rng.choice(GROUPS)}.".capitalize()
    if shape == 1:
        return f"A study of {rng.randint(40, 900)} {rng.choice(GROUPS)} found that {name} {third}."
    if shape == 2 and stance.denied is not None:
        return f"{name.capitalize()} does not {stance.denied[1]}, whatever the magazines say."
    if shape == 3 and not stance.prescribed:
        stance.prescribed = True
        return (
            f"Do {name} {stance.frequency} to {rng.choice(OUTCOMES)[1]}, and keep the effort "
            f"{rng.choice(['easy', 'steady', 'controlled', 'honest'])}."
        )
    if shape in (2, 3, 4):
        return f"{rng.choice(BODY).capitalize()} takes more load when {rng.choice(CONDITIONS)}."
    if shape == 5:
        return (
            f"When {rng.choice(CONDITIONS)}, {rng.choice(BODY)} and {rng.choice(BODY)} "
            f"need {rng.randint(2, 6)} extra days to adapt."
        )
    if shape == 6:
        return (
            f"Many {rng.choice(GROUPS)} add {name} after an injury, and {rng.randint(2, 9)} in ten "
            f"say it {third}."
        )
    if shape == 7:
        return (
            f"Keep a log of every {subject[1]} so you can see how {rng.choice(BODY)} responds over "
            f"{rng.randint(3, 12)} weeks."
        )
    if shape == 8:
        return f"If {rng.choice(CONDITIONS)}, swap the next {subject[1]} for an easy walk."
    if shape == 9:
        return (
            f"{rng.choice(GROUPS).capitalize()} who {rng.choice(['log', 'track', 'plan'])} their "
            f"{subject[1]}s recover about {rng.randint(10, 40)} percent faster."
        )
    if shape == 10:
        return f"Warm up for {rng.randint(5, 15)} minutes before any {subject[1]}, then build the pace gradually."
    return f"{rng.choice(BODY).capitalize()} adapts over {rng.randint(4, 16)} weeks, faster in {rng.choice(GROUPS)}."


def _exercise_paragraph(rng: random.Random) -> str:
    name, how = rng.choice(EXERCISES)
    sets, reps = rng.randint(2, 4), rng.choice([8, 10, 12, 15, 20])
    return (
        f"Try {name} as part of your strength routine. {how.capitalize()}. "
        f"Do {sets} sets of {reps} repetitions, resting a minute between sets."
    )


def article(rng: random.Random, number: int, sections: int = 25) -> tuple[str, str, str]:
    """(source id, title, Markdown text) of one generated article with about `sections` short sections."""
    subject = rng.choice(SUBJECTS)
    second = rng.choice(SUBJECTS)
    stance = _Stance(rng)
    title = f"{subject[0].capitalize()} and {second[0]}: notes for {rng.choice(GROUPS)} ({number})"
    lines = []
    if rng.random() < 0.3:
        lines += [rng.choice(FURNITURE), ""]
    lines += [f"# {title}", ""]
    headings = rng.sample(HEADINGS, k=min(len(HEADINGS), sections))
    for i in range(sections):
        heading = headings[i % len(headings)] + ("" if i < len(headings) else f" ({i // len(headings) + 1})")
        lines += [f"## {heading}", ""]
        topic = subject if rng.random() < 0.7 else second
        if rng.random() < 0.25:
            lines += [_exercise_paragraph(rng), ""]
        paragraph = " ".join(_sentence(rng, topic, stance) for _ in range(rng.randint(3, 5)))
        lines += [paragraph, ""]
    if rng.random() < 0.3:
        lines += [rng.choice(FURNITURE), ""]
    if rng.random() < 0.2:
        lines += ["Comments", "", "1. Sam says:", "Great read, it worked for me.", ""]
    return f"gen-{number:05d}", title, "\n".join(lines)


DOMAIN = """description = "a generated running library: training, injuries, strength and recovery"

[terms]
generic = ["run", "runs", "running", "runner", "runners", "good", "best", "help", "week", "day", "do", "does"]
anchor_stopwords = ["run", "running", "runner", "runners"]

[exercises]
names = ["calf raise", "glute bridge", "side plank", "squat", "lunge", "clamshell", "step up",
         "tibialis raise", "heel drop", "dead bug", "monster walk", "hike"]
modifiers = ["single leg", "walking", "hip"]
needs_modifier = ["hike"]
"""


def write_library(directory: Path, count: int, *, seed: int = 7, sections: int = 25) -> Path:
    """Write `count` generated articles, their sources.toml (with dates) and a domain file."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    catalogue = ["# Generated by evals/library_gen.py", ""]
    for number in range(count):
        source_id, title, text = article(rng, number, sections)
        (directory / f"{source_id}.md").write_text(text, encoding="utf-8")
        year = rng.randint(2005, 2025)
        catalogue += [
            f"[{source_id}]",
            f'title = "{title}"',
            f"published = {year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "",
        ]
    (directory / "sources.toml").write_text("\n".join(catalogue), encoding="utf-8")
    (directory / "domain.toml").write_text(DOMAIN, encoding="utf-8")
    return directory
