"""双报到 (a party member registers where they live) and party-organisation navigation."""
