"""Experiments over runs: the grid's methods (:mod:`.methods`), grid files, runs and records
(:mod:`.grid`), where runs execute (:mod:`.executors`), choosing a method on a user's file
(:mod:`.selection`), and reports (:mod:`.report`, :mod:`.plots`)."""
