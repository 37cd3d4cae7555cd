"""战时 mobilisation (issue 21): a commander declares an incident over an area; the bot calls every
party member, grid leader, 双报到 member and volunteer of the area (one outbox message each, kind
"mobilise.call", essential); they answer 到 / 稍后到 (with an ETA) / 不能到; the grids' leaders get
their 作战单元 roster; the commander posts tasks to grids, which their members take and do; people
check in on site by sharing a location inside their grid and check out with 离开; the live roll
shows who answered, who is on site, which grids have no one yet and the open tasks; a grid with
no one on site X minutes after the declaration goes to the community admins, after 2X to the
street's; the commander closes the incident and a report follows (per grid: called, answered,
on site, hours per person, tasks done), exportable as CSV. Every step is an IncidentEvent.

Modules: area (who commands where, the grids of an area), people (who is called, the grids'
leaders), declare, answers, tasks, checkins, roll (figures, the live roll, rosters, the map),
sweep (the scheduler's rosters and escalations), report (closing and the report), buttons (the
data of every button), events.
"""
