"""The training runtime both phases share, one concept a module: the device and its measures
(:mod:`.device`), the optimizers and schedules (:mod:`.optim`), the guards that stop a run
(:mod:`.guards`), the per-step log (:mod:`.log`), weight averaging (:mod:`.averaging`) and what a
run builds from its settings: its data, model and batches (:mod:`.build`)."""
