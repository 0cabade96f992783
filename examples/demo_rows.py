"""The demo's rows: the same goal trees, sessions, activities and programs on every build.

No randomness, no wall clock: ids are UUID5s of fixed keys, timestamps are fixed.
``database_rows(dev)`` gives every row of the production (``dev=False``) or the development
(``dev=True``) database.
"""

import uuid
from datetime import datetime, timedelta

_NAMESPACE = uuid.UUID("6f1c2b9e-4d3a-5e8f-9a7b-0c1d2e3f4a5b")
_EPOCH = datetime(2025, 10, 1, 9, 0, 0)


def _id(key: str) -> str:
    """A UUID-like id that is the same on every build."""
    return str(uuid.uuid5(_NAMESPACE, key))


def _ts(hours: float) -> str:
    """A fixed timestamp, in SQLAlchemy's SQLite DATETIME format."""
    return (_EPOCH + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")


GUITAR_ROOT = "Become a Great Guitar Player"
CALISTHENICS_ROOT = "Become an Elite Calisthenics Athlete"

# (key, type, name, parent key); roots have parent None. Parents come before children.
_GOAL_TREE: tuple[tuple[str, str, str, str | None], ...] = (
    ("g", "UltimateGoal", GUITAR_ROOT, None),
    ("g.ltg1", "LongTermGoal", "Improvise Fluently over Jazz Standards", "g"),
    ("g.mtg1", "MidTermGoal", "Learn the CAGED System", "g.ltg1"),
    ("g.stg1", "ShortTermGoal", "Play All Five CAGED Shapes in C Major", "g.mtg1"),
    ("g.ig1", "ImmediateGoal", "Connect Shapes 1 and 2 Cleanly", "g.stg1"),
    ("g.mg1", "MicroGoal", "Shape 1 Arpeggio at 80 bpm", "g.ig1"),
    ("g.ng1", "NanoGoal", "Barre the 8th Fret Without Buzz", "g.mg1"),
    ("g.ps1", "PracticeSession", "Guitar Practice - 2025-11-03", "g.stg1"),
    ("g.ps2", "PracticeSession", "Guitar Practice - 2025-11-05", "g.stg1"),
    ("g.mtg2", "MidTermGoal", "Comp Through Autumn Leaves", "g.ltg1"),
    ("g.stg2", "ShortTermGoal", "Learn Shell Voicings for ii-V-I", "g.mtg2"),
    ("g.ig2", "ImmediateGoal", "Memorise Drop-2 Voicings on the Top Strings", "g.stg2"),
    ("g.ltg2", "LongTermGoal", "Build Clean Technical Speed", "g"),
    ("g.mtg3", "MidTermGoal", "Alternate Picking at 140 bpm", "g.ltg2"),
    ("g.stg3", "ShortTermGoal", "Sixteenth Notes at 110 bpm", "g.mtg3"),
    ("g.ig3", "ImmediateGoal", "Three-Note-per-String Scale at 100 bpm", "g.stg3"),
    ("g.ps3", "PracticeSession", "Guitar Practice - 2025-11-08", "g.stg3"),
    ("g.mtg4", "MidTermGoal", "Legato Runs Across Two Octaves", "g.ltg2"),
    ("g.stg4", "ShortTermGoal", "Hammer-on/Pull-off Endurance: 2 Minutes", "g.mtg4"),
    ("c", "UltimateGoal", CALISTHENICS_ROOT, None),
    ("c.ltg1", "LongTermGoal", "Hold a Full Planche", "c"),
    ("c.mtg1", "MidTermGoal", "Straddle Planche for 10 Seconds", "c.ltg1"),
    ("c.stg1", "ShortTermGoal", "Tuck Planche for 20 Seconds", "c.mtg1"),
    ("c.ig1", "ImmediateGoal", "Advanced Tuck Planche Holds 3x10 s", "c.stg1"),
    ("c.ps1", "PracticeSession", "Calisthenics Training - 2025-11-04", "c.stg1"),
    ("c.ps2", "PracticeSession", "Calisthenics Training - 2025-11-06", "c.stg1"),
    ("c.mtg2", "MidTermGoal", "Planche Push-ups x5", "c.ltg1"),
    ("c.stg2", "ShortTermGoal", "Pseudo-Planche Push-ups 3x12", "c.mtg2"),
    ("c.ltg2", "LongTermGoal", "Perform a One-Arm Pull-up", "c"),
    ("c.mtg3", "MidTermGoal", "Archer Pull-ups, 5 per Side", "c.ltg2"),
    ("c.stg3", "ShortTermGoal", "Weighted Pull-ups +20 kg x5", "c.mtg3"),
    ("c.ig2", "ImmediateGoal", "Negative One-Arm Pull-ups 3x3", "c.stg3"),
    ("c.mg1", "MicroGoal", "5-Second Eccentric on the Left Arm", "c.ig2"),
    ("c.ps3", "PracticeSession", "Calisthenics Training - 2025-11-07", "c.stg3"),
    ("c.ltg3", "LongTermGoal", "Achieve a Freestanding Handstand Push-up", "c"),
    ("c.mtg4", "MidTermGoal", "60-Second Freestanding Handstand", "c.ltg3"),
    # The seed's "3 orphaned PracticeSessions": roots of their own (root_id = own id).
    ("o.ps1", "PracticeSession", "Practice Session - 2025-10-28", None),
    ("o.ps2", "PracticeSession", "Practice Session - 2025-10-29", None),
    ("o.ps3", "PracticeSession", "Practice Session - 2025-10-30", None),
)

_COMPLETED = {"g.ng1", "g.ps1", "g.ps2", "g.ps3", "c.ps1", "c.ps2", "c.ps3", "c.stg2", "o.ps1"}
_SOFT_DELETED = {"o.ps3"}
# Practice session -> (template, start hour offset, minutes).
_SESSIONS = {
    "g.ps1": ("st.g1", 33 * 24 + 9, 45),
    "g.ps2": ("st.g2", 35 * 24 + 9, 60),
    "g.ps3": ("st.g1", 38 * 24 + 10, 40),
    "c.ps1": ("st.c1", 34 * 24 + 7, 75),
    "c.ps2": ("st.c1", 36 * 24 + 7, 70),
    "c.ps3": ("st.c1", 37 * 24 + 7, 80),
    "o.ps1": (None, 27 * 24 + 18, 30),
    "o.ps2": (None, 28 * 24 + 18, 25),
    "o.ps3": (None, 29 * 24 + 18, 20),
}
# Sessions that happened on a program day (development data only: program_day_id).
_SESSION_DAY = {"g.ps1": "pd.g1", "c.ps1": "pd.c1"}
_PARENTS = {key: parent for key, _, _, parent in _GOAL_TREE}


def _root_of(key: str) -> str:
    while _PARENTS[key] is not None:
        key = _PARENTS[key]
    return key


def _goals(dev: bool) -> list[dict]:
    rows = []
    for n, (key, goal_type, name, parent) in enumerate(_GOAL_TREE):
        created = n * 7.0
        row = {
            "id": _id(key),
            "type": goal_type,
            "name": name,
            "description": f"{goal_type}: {name}",
            "deadline": _ts(120 * 24) if goal_type == "UltimateGoal" else None,
            "completed": 1 if key in _COMPLETED else 0,
            "created_at": _ts(created),
            "updated_at": _ts(created + 1),
            "deleted_at": _ts(created + 2) if key in _SOFT_DELETED else None,
            "parent_id": _id(parent) if parent else None,
            "root_id": _id(_root_of(key)),
            "sort_order": n,
            "targets": None,
            "relevance_statement": None,
            "is_smart": 1 if goal_type in ("ShortTermGoal", "ImmediateGoal") else 0,
            "session_start": None,
            "session_end": None,
            "total_duration_seconds": None,
            "template_id": None,
            "attributes": None,
        }
        if goal_type == "ShortTermGoal":
            row["targets"] = '[{"metric": "tempo", "value": 110}]'
            row["relevance_statement"] = "A measurable step towards the long-term goal."
        if key in _SESSIONS:
            template, start, minutes = _SESSIONS[key]
            row["session_start"] = _ts(start)
            row["session_end"] = _ts(start + minutes / 60)
            row["total_duration_seconds"] = minutes * 60
            row["template_id"] = _id(template) if template else None
            row["attributes"] = '{"notes": "", "energy": 4}'
        if dev:
            row["program_day_id"] = _id(_SESSION_DAY[key]) if key in _SESSION_DAY else None
            row["completed_at"] = row["updated_at"] if row["completed"] else None
        rows.append(row)
    return rows


def database_rows(dev: bool) -> list[tuple[str, list[dict]]]:
    """Every row of one database as (table, rows) batches, in insert order (parents first)."""
    g, c = _id("g"), _id("c")
    t = _ts

    def audit(n: float) -> dict:
        return {"created_at": t(n), "updated_at": t(n + 0.5)}

    goals = _goals(dev)
    # Goals reference session templates (template_id) which reference the roots: insert
    # the roots, then the templates, then the other goals.
    roots = [r for r in goals if r["parent_id"] is None]
    children = [r for r in goals if r["parent_id"] is not None]

    session_templates = [
        {"id": _id("st.g1"), "root_id": g, "name": "Guitar Technique Routine",
         "description": "Warm-up, picking drills, arpeggios.",
         "template_data": '{"sections": ["warm-up", "picking", "arpeggios"]}', **audit(300)},
        {"id": _id("st.g2"), "root_id": g, "name": "Jazz Vocabulary Session",
         "description": "Voicings and comping over a standard.",
         "template_data": '{"sections": ["voicings", "comping"]}', **audit(301)},
        {"id": _id("st.c1"), "root_id": c, "name": "Planche & Pull Strength Day",
         "description": "Skill work first, strength second.",
         "template_data": '{"sections": ["planche", "pull"]}', **audit(302)},
    ]
    activity_groups = [
        {"id": _id("ag.g1"), "root_id": g, "name": "Technique", "sort_order": 0, **audit(310)},
        {"id": _id("ag.g2"), "root_id": g, "name": "Theory & Repertoire", "sort_order": 1, **audit(311)},
        {"id": _id("ag.c1"), "root_id": c, "name": "Strength Skills", "sort_order": 0, **audit(312)},
    ]

    def activity(key, root, group, name, has_sets=0, has_splits=0, n=0.0):
        return {"id": _id(key), "root_id": root, "group_id": _id(group), "name": name,
                "description": None, "has_sets": has_sets, "has_metrics": 1,
                "metrics_multiplicative": 0, "has_splits": has_splits, **audit(320 + n)}

    activity_definitions = [
        activity("ad.g1", g, "ag.g1", "Alternate Picking Drill", n=0),
        activity("ad.g2", g, "ag.g1", "CAGED Arpeggios", n=1),
        activity("ad.g3", g, "ag.g2", "Shell Voicing Comping", n=2),
        activity("ad.c1", c, "ag.c1", "Tuck Planche Hold", has_sets=1, n=3),
        activity("ad.c2", c, "ag.c1", "Archer Pull-up", has_sets=1, has_splits=1, n=4),
    ]

    def metric(key, act, root, name, unit, n, top=0):
        return {"id": _id(key), "activity_id": _id(act), "root_id": root, "name": name,
                "unit": unit, "is_top_set_metric": top, "is_multiplicative": 1,
                "is_active": 1, "sort_order": 0, **audit(330 + n)}

    metric_definitions = [
        metric("md.g1", "ad.g1", g, "Tempo", "bpm", 0, top=1),
        metric("md.g2", "ad.g2", g, "Tempo", "bpm", 1, top=1),
        metric("md.g3", "ad.g3", g, "Duration", "min", 2),
        metric("md.c1", "ad.c1", c, "Hold Time", "s", 3, top=1),
        metric("md.c2", "ad.c2", c, "Reps", "reps", 4),
        metric("md.c3", "ad.c2", c, "Added Weight", "kg", 5),
    ]
    split_definitions = [
        {"id": _id("sd.c1"), "activity_id": _id("ad.c2"), "root_id": c, "name": "Left",
         "sort_order": 0, **audit(340)},
        {"id": _id("sd.c2"), "activity_id": _id("ad.c2"), "root_id": c, "name": "Right",
         "sort_order": 1, **audit(341)},
    ]

    # (key, session, activity, sort order); times follow the session's start.
    instance_specs = [
        ("ai.1", "g.ps1", "ad.g1", 0), ("ai.2", "g.ps1", "ad.g2", 1),
        ("ai.3", "g.ps2", "ad.g3", 0), ("ai.4", "g.ps3", "ad.g1", 0),
        ("ai.5", "c.ps1", "ad.c1", 0), ("ai.6", "c.ps2", "ad.c1", 0),
        ("ai.7", "c.ps2", "ad.c2", 1), ("ai.8", "c.ps3", "ad.c2", 0),
    ]
    activity_instances = []
    for n, (key, session, act, order) in enumerate(instance_specs):
        start = _SESSIONS[session][1] + order * 0.25
        activity_instances.append({
            "id": _id(key), "practice_session_id": _id(session), "activity_definition_id": _id(act),
            "root_id": _id(_root_of(session)), "time_start": t(start), "time_stop": t(start + 0.25),
            "duration_seconds": 900, "sort_order": order, "notes": None,
            "data": '{"sets": []}' if act.startswith("ad.c") else None, "completed": 1,
            **audit(start + 1),
        })

    # (key, instance, metric, split, value)
    value_specs = [
        ("mv.1", "ai.1", "md.g1", None, 100.0), ("mv.2", "ai.2", "md.g2", None, 80.0),
        ("mv.3", "ai.3", "md.g3", None, 20.0), ("mv.4", "ai.4", "md.g1", None, 108.0),
        ("mv.5", "ai.5", "md.c1", None, 12.0), ("mv.6", "ai.6", "md.c1", None, 14.5),
        ("mv.7", "ai.7", "md.c2", "sd.c1", 3.0), ("mv.8", "ai.7", "md.c2", "sd.c2", 3.0),
        ("mv.9", "ai.8", "md.c2", "sd.c1", 4.0), ("mv.10", "ai.8", "md.c2", "sd.c2", 4.0),
        ("mv.11", "ai.8", "md.c3", None, 5.0),
    ]
    instance_by_key = {spec[0]: spec for spec in instance_specs}
    metric_values = []
    for key, inst, met, split, value in value_specs:
        session = instance_by_key[inst][1]
        metric_values.append({
            "id": _id(key), "activity_instance_id": _id(inst), "metric_definition_id": _id(met),
            "split_definition_id": _id(split) if split else None,
            "root_id": _id(_root_of(session)), "value": value,
            **audit(_SESSIONS[session][1] + 1),
        })

    practice_session_goals = [
        {"practice_session_id": _id(s), "goal_id": _id(goal)}
        for s, goal in (("g.ps1", "g.ig1"), ("g.ps1", "g.mg1"), ("g.ps2", "g.ig2"),
                        ("g.ps3", "g.ig3"), ("c.ps1", "c.ig1"), ("c.ps3", "c.ig2"))
    ]
    programs = [
        {"id": _id("prog.g"), "root_id": g, "name": "Guitar Winter Program",
         "description": "Technique and jazz vocabulary.", "start_date": t(31 * 24),
         "end_date": t(90 * 24), "goal_ids": f'["{_id("g.ltg1")}", "{_id("g.ltg2")}"]',
         "weekly_schedule": '{"mon": "technique", "wed": "jazz", "sat": "technique"}',
         "is_active": 1, **audit(350)},
        {"id": _id("prog.c"), "root_id": c, "name": "Calisthenics Strength Cycle",
         "description": "Two blocks: accumulation, then intensification.",
         "start_date": t(31 * 24), "end_date": t(73 * 24),
         "goal_ids": f'["{_id("c.ltg1")}", "{_id("c.ltg2")}"]',
         "weekly_schedule": '{"tue": "strength", "thu": "strength"}',
         "is_active": 1, **audit(351)},
    ]
    program_blocks = [
        {"id": _id("blk.g1"), "program_id": _id("prog.g"), "name": "Foundation",
         "start_date": "2025-11-01", "end_date": "2025-11-30", "color": "#3b82f6",
         "goal_ids": f'["{_id("g.mtg1")}"]'},
        {"id": _id("blk.c1"), "program_id": _id("prog.c"), "name": "Accumulation",
         "start_date": "2025-11-01", "end_date": "2025-11-21", "color": "#22c55e",
         "goal_ids": f'["{_id("c.mtg1")}"]'},
        {"id": _id("blk.c2"), "program_id": _id("prog.c"), "name": "Intensification",
         "start_date": "2025-11-22", "end_date": "2025-12-12", "color": "#ef4444",
         "goal_ids": f'["{_id("c.mtg3")}"]'},
    ]
    # (key, block, date, day number, name)
    day_specs = [
        ("pd.g1", "blk.g1", "2025-11-03", 1, "Technique Day"),
        ("pd.g2", "blk.g1", "2025-11-05", 2, "Jazz Day"),
        ("pd.c1", "blk.c1", "2025-11-04", 1, "Strength A"),
        ("pd.c2", "blk.c1", "2025-11-06", 2, "Strength B"),
        ("pd.c3", "blk.c2", "2025-11-25", 1, "Heavy A"),
        ("pd.c4", "blk.c2", "2025-11-27", 2, "Heavy B"),
    ]
    program_days = []
    for key, block, date, number, name in day_specs:
        row = {"id": _id(key), "block_id": _id(block), "date": date, "day_number": number,
               "name": name, "notes": None}
        if dev:
            row["is_completed"] = 1 if key in _SESSION_DAY.values() else 0
        program_days.append(row)

    # (key, program day, session template, order)
    schedule = [
        ("ss.1", "pd.g1", "st.g1", 0),
        ("ss.2", "pd.g1", "st.g2", 1),
        ("ss.3", "pd.g2", "st.g2", 0),
        ("ss.4", "pd.c1", "st.c1", 0),
    ]
    batches = [
        ("goals", roots),
        ("session_templates", session_templates),
        ("goals", children),
        ("practice_session_goals", practice_session_goals),
        ("activity_groups", activity_groups),
        ("activity_definitions", activity_definitions),
        ("metric_definitions", metric_definitions),
        ("split_definitions", split_definitions),
        ("activity_instances", activity_instances),
        ("metric_values", metric_values),
        ("programs", programs),
        ("program_blocks", program_blocks),
        ("program_days", program_days),
    ]
    if dev:
        batches.append(("program_day_templates", [
            {"program_day_id": _id(day), "session_template_id": _id(tpl), "order": order}
            for _, day, tpl, order in schedule
        ]))
    else:
        batches.append(("scheduled_sessions", [
            {"id": _id(key), "program_day_id": _id(day), "session_template_id": _id(tpl),
             "order": order, "created_at": t(360 + n)}
            for n, (key, day, tpl, order) in enumerate(schedule)
        ]))
    return batches

