"""Word lists and text builders for the generated template: Feng Shui 2 flavour.

The text is deliberately not lorem ipsum: HTML descriptions, curly quotes, accents and CJK make
every later stage (cloning, export, import, the API) handle what real content looks like, and a
bug that mangles encodings or escapes HTML shows up in tests instead of in production.
"""

from __future__ import annotations

import random

# 42 schtick categories (the production template has exactly this many).
SCHTICK_CATEGORIES: tuple[str, ...] = (
    "Guns",
    "Martial Arts",
    "Driving",
    "Sorcery",
    "Creature",
    "Transformed Animal",
    "Gene Freak",
    "Cyborg",
    "Scroungetech",
    "Mutant",
    "Core",
    "Foe",
    "Fu: Path of the Tiger",
    "Fu: Path of the Crane",
    "Fu: Path of the Dragon",
    "Fu: Path of the Fox",
    "Fu: Path of the Mantis",
    "Fu: Path of the Monkey",
    "Fu: Path of the Ox",
    "Fu: Path of the Serpent",
    "Fu: Path of the Bear",
    "Fu: Path of the Crab",
    "Fu: Path of the Flame",
    "Fu: Path of the Willow",
    "Sorcery: Blast",
    "Sorcery: Divination",
    "Sorcery: Fertility",
    "Sorcery: Heal",
    "Sorcery: Movement",
    "Sorcery: Summoning",
    "Sorcery: Influence",
    "Creature: Abomination",
    "Creature: Ghost",
    "Creature: Demon",
    "Animal: Tiger",
    "Animal: Crab",
    "Animal: Dragon",
    "Animal: Monkey",
    "Gene Freak: Mutations",
    "Cyborg: Implants",
    "Netherworld",
    "Juncture Lore",
)

SCHTICK_ADJECTIVES: tuple[str, ...] = (
    "Flying",
    "Iron",
    "Golden",
    "Silent",
    "Thunderous",
    "Crimson",
    "Jade",
    "Drunken",
    "Shadow",
    "Burning",
    "Hungry",
    "Lucky",
    "Relentless",
    "Crouching",
    "Hidden",
    "Savage",
    "Lightning",
    "Serpent's",
    "Tiger's",
    "Dragon's",
    "Crane's",
    "Mantis",
    "Phoenix",
    "Ghostly",
    "Furious",
    "Hair-Trigger",
    "Double-Tap",
    "Blazing",
    "Wounded",
    "Unbreakable",
)

SCHTICK_NOUNS: tuple[str, ...] = (
    "Fist",
    "Kick",
    "Reload",
    "Draw",
    "Palm",
    "Stance",
    "Strike",
    "Step",
    "Fury",
    "Gambit",
    "Ricochet",
    "Barrage",
    "Counter",
    "Leap",
    "Roar",
    "Vengeance",
    "Aim",
    "Spin",
    "Charm",
    "Ward",
    "Blessing",
    "Hex",
    "Bite",
    "Claw",
    "Howl",
    "Overdrive",
    "Burnout",
    "Slide",
    "Ambush",
    "Recovery",
)

# Epithets appended to some names so that names themselves carry CJK and accents.
NAME_EPITHETS: tuple[str, ...] = (
    " (龍拳)",
    " (虎爪)",
    " (玉掌)",
    " (鶴步)",
    " (風)",
    " of the Café",
    " à la Shàolín",
    " — Señor Style",
)

PATH_ANIMALS: tuple[str, ...] = (
    "Tiger",
    "Crane",
    "Dragon",
    "Fox",
    "Mantis",
    "Monkey",
    "Ox",
    "Serpent",
    "Bear",
    "Crab",
    "Willow",
    "Flame",
    "Lotus",
    "Storm",
)

ACTION_VALUES_NAMES: tuple[str, ...] = (
    "Guns",
    "Martial Arts",
    "Sorcery",
    "Creature",
    "Defense",
    "Toughness",
    "Speed",
    "Fortune",
)

VERBS: tuple[str, ...] = (
    "spend a shot",
    "take a Smackdown",
    "roll a Boxcars",
    "miss an attack",
    "spend a point of Chi",
    "face three or more mooks",
    "are at 25 or more Wound Points",
    "attack with your signature weapon",
)

QUOTES: tuple[str, ...] = (
    "You want a piece of me? Take a number.",
    "In the Ancient Juncture we called this “Tuesday.”",
    "Le dragon ne dort jamais.",
    "Fūjin sends his regards.",
    "He who hesitates is lunch.",
    "Don't make me use the other hand.",
    "¡Ándale! The feng shui site is this way!",
    "天下武功，唯快不破。",  # noqa: RUF001 (the fullwidth comma is Chinese punctuation)
    "Nobody reloads in the middle of a good speech.",
    "I didn't come from 2074 to lose to a guy in a tracksuit.",
    "Ça suffit — the Lotus will pay for this.",
    "This is not a chop-sockey movie. It's worse.",
)

# 12 factions and the 7 junctures linked to them (faction index for each juncture).
FACTIONS: tuple[str, ...] = (
    "The Dragons",
    "The Ascended",
    "The Lotus",
    "The Guiding Hand",
    "The Jammers",
    "The Architects of the Flesh",
    "The Four Monarchs",
    "The Eaters of the Lotus",
    "The Buro",
    "The Silver Dragons",
    "The Black Flag Society",
    "Les Enfants du Cygne",
)

JUNCTURES: tuple[tuple[str, int], ...] = (
    ("Ancient Juncture (690 AD)", 2),
    ("Past Juncture (1850)", 3),
    ("Contemporary Juncture", 1),
    ("Future Juncture (2074)", 5),
    ("The Netherworld", 6),
    ("Prehistoric Juncture", 4),
    ("Shànghǎi 1937", 0),
)

# 86 weapons: name, category, damage, concealment, reload, juncture.
WEAPON_CATEGORIES: tuple[str, ...] = (
    "Pistol",
    "Rifle",
    "Shotgun",
    "Submachine Gun",
    "Melee",
    "Thrown",
)

_PISTOLS = (
    "Beretta 92FS",
    "Glock 17",
    "Colt 1911A",
    "Desert Eagle .357",
    "Walther PPK",
    "SIG Sauer P226",
    "Smith & Wesson Model 29",
    "Browning Hi-Power",
    "Colt Python",
    "Ruger Redhawk",
    "Makarov PM",
    "Tokarev TT-33",
    "Mauser C96 “Broomhandle”",
    "Nambu Type 14",
    "Webley Mk VI",
    "Heckler & Koch USP",
    "Colt Single Action Army",
    "Derringer",
    "Buro Sidearm Mk II",
    "Jammer Junk-Pistol",
)
_RIFLES = (
    "AK-47",
    "M16A2",
    "Steyr AUG",
    "FN FAL",
    "Lee-Enfield No. 4",
    "Mosin-Nagant",
    "Barrett M82",
    "Winchester Model 1873",
    "Springfield Musket",
    "Buro Plasma Rifle",
    "Dragunov SVD",
    "Remington 700",
    "Arrowhead Longbow",
    "Chinese Repeating Crossbow",
)
_SHOTGUNS = (
    "Mossberg 500",
    "Franchi SPAS-12",
    "Remington 870",
    "Ithaca 37",
    "Sawed-Off Double Barrel",
    "Benelli M4",
    "Street Sweeper",
    "Winchester 1887 Lever-Action",
)
_SMGS = (
    "Uzi",
    "HK MP5",
    "Thompson M1928",
    "Ingram MAC-10",
    "Skorpion vz. 61",
    "FN P90",
    "Sten Mk II",
    "Steyr TMP",
    "PPSh-41",
    "Buro Stun-SMG",
)
_MELEE = (
    "Jiàn (Straight Sword)",
    "Dāo (Broadsword)",
    "Katana",
    "Butterfly Knives",
    "Three-Section Staff",
    "Nunchaku",
    "Tonfa",
    "Guān Dāo",
    "Meteor Hammer",
    "Tiger Hook Swords",
    "Bō Staff",
    "Rapier",
    "Baseball Bat",
    "Tire Iron",
    "Chainsaw",
    "Fire Axe",
    "Claw Gauntlets",
    "Machete",
    "Sledgehammer",
    "Sai",
    "Ceremonial Dagger",
    "Bull Whip",
)
_THROWN = (
    "Shuriken",
    "Throwing Knives",
    "Flying Guillotine",
    "Hand Grenade",
    "Molotov Cocktail",
    "Bolas",
    "Chakram",
    "Poison Darts",
    "Rope Dart",
    "Flash-Bang",
    "Tomahawk",
    "Mah-Jongg Tiles (Sharpened)",
)

WEAPON_GROUPS: tuple[tuple[str, tuple[str, ...], int, int], ...] = (
    # category, names, base damage, base concealment
    ("Pistol", _PISTOLS, 9, 2),
    ("Rifle", _RIFLES, 13, 5),
    ("Shotgun", _SHOTGUNS, 13, 4),
    ("Submachine Gun", _SMGS, 10, 3),
    ("Melee", _MELEE, 8, 3),
    ("Thrown", _THROWN, 7, 1),
)

WEAPON_JUNCTURES: tuple[str, ...] = ("Modern", "Ancient", "Past", "Future", "Netherworld")

# 35 PC archetypes (the template characters players start from) and the 5 GM-side types.
PC_ARCHETYPES: tuple[str, ...] = (
    "Archer",
    "Bandit",
    "Big Bruiser",
    "Bodyguard",
    "Bounty Hunter",
    "Cyborg",
    "Drifter",
    "Driver",
    "Everyday Hero",
    "Ex-Special Forces",
    "Full-Metal Nutball",
    "Gambler",
    "Gene Freak",
    "Ghost",
    "Highway Ronin",
    "Journalist",
    "Karate Cop",
    "Killer",
    "Magic Cop",
    "Martial Artist",
    "Masked Avenger",
    "Maverick Cop",
    "Ninja",
    "Old Master",
    "Private Investigator",
    "Redeemed Pirate",
    "Scrappy Kid",
    "Sifu",
    "Sorcerer",
    "Spy",
    "Supernatural Creature",
    "Thief",
    "Transformed Crab",
    "Transformed Dragon",
    "Two-Fisted Archaeologist",
)

NPC_CHARACTERS: tuple[tuple[str, str], ...] = (
    ("Ally", "Old Friend Lǐ Wěi"),
    ("Boss", "Madame Zhào of the Red Lantern"),
    ("Featured Foe", "Ninja Assassin"),
    ("Mook", "Triad Mook"),
    ("Uber-Boss", "The Jade Emperor's Shadow (玉帝之影)"),
)

MAIN_ATTACKS: tuple[str, ...] = ("Guns", "Martial Arts", "Sorcery", "Creature", "Scroungetech")
FORTUNE_TYPES: tuple[str, ...] = ("Fortune", "Chi", "Magic", "Genome", "Reason")
SKILLS: tuple[str, ...] = (
    "Driving",
    "Deceit",
    "Detective",
    "Fix-It",
    "Info: Kung Fu Movies",
    "Intimidation",
    "Leadership",
    "Medicine",
    "Police",
    "Sabotage",
    "Seduction",
    "Intrusion",
)
COLORS: tuple[str, ...] = (
    "#b71c1c",
    "#1a237e",
    "#004d40",
    "#e65100",
    "#4a148c",
    "#33691e",
    "#263238",
    "#f9a825",
)


def schtick_names(rng: random.Random, count: int) -> list[str]:
    """`count` distinct schtick names, a few with accents or CJK epithets."""
    combos = [f"{a} {n}" for a in SCHTICK_ADJECTIVES for n in SCHTICK_NOUNS]
    if count > len(combos):
        raise ValueError(f"only {len(combos)} schtick names available, {count} asked")
    rng.shuffle(combos)
    names = combos[:count]
    for i in range(0, count, 23):
        names[i] += NAME_EPITHETS[(i // 23) % len(NAME_EPITHETS)]
    return names


def html_paragraphs(*paragraphs: str) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def schtick_description(
    rng: random.Random, name: str, category: str, prerequisite: str | None
) -> str:
    bonus = rng.randint(1, 3)
    value = rng.choice(ACTION_VALUES_NAMES)
    parts = [
        f"When you {rng.choice(VERBS)}, gain <strong>+{bonus}</strong> {value} until the end of "
        f"the sequence. A favourite of {category} heroes.",
        f"<em>“{rng.choice(QUOTES)}”</em>",
    ]
    if prerequisite:
        parts.append(f"Prerequisite: <strong>{prerequisite}</strong>.")
    return html_paragraphs(*parts)


def weapon_description(rng: random.Random, name: str, category: str, juncture: str) -> str:
    return html_paragraphs(
        f"A {category.lower()} seen all over the {juncture} juncture. "
        f"Mooks who see the <strong>{name}</strong> tend to reconsider their career choices.",
        f"<em>“{rng.choice(QUOTES)}”</em>",
    )


def faction_description(rng: random.Random, name: str) -> str:
    return html_paragraphs(
        f"<strong>{name}</strong> fight the secret war for the feng shui sites that shape "
        "history — from Hong Kong's neon alleys to the Netherworld's shifting corridors.",
        f"Motto: <em>“{rng.choice(QUOTES)}”</em>",
    )


def juncture_description(rng: random.Random, name: str, faction: str) -> str:
    return html_paragraphs(
        f"The {name} is held, for now, by {faction}.",
        "Portals open in temples, cinemas and at least one karaoke bar (卡拉OK).",
    )


def character_description(rng: random.Random, name: str, kind: str) -> dict[str, str]:
    return {
        "Appearance": html_paragraphs(
            f"The {name} wears a {rng.choice(('battered', 'spotless', 'blood-spattered'))} "
            f"{rng.choice(('trench coat', 'silk tángzhuāng', 'flak jacket', 'tuxedo'))}."
        ),
        "Background": html_paragraphs(
            f"A {kind} who learned the hard way that the Chi War never ends.",
            f"<em>“{rng.choice(QUOTES)}”</em>",
        ),
        "Melodramatic Hook": html_paragraphs(
            rng.choice(
                (
                    "Searching for the master who betrayed the temple.",
                    "Owes a very large debt to a very small man in Macau.",
                    "Carries a letter in a language nobody can read — yet.",
                    "Sworn to protect a café owner named Zoë from the Lotus.",
                )
            )
        ),
        "Age": str(rng.randint(19, 71)),
        "Height": f"{rng.randint(155, 198)} cm",
        "Eye Color": rng.choice(("brown", "grey", "green", "hazel", "jade")),
    }
