"""In-process tests of the custom actions (actions/), financial-demo style: a tracker from a
named JSON fixture (tests/fixtures/trackers/), the action's run(), assertions on the events
and the messages it returns."""
