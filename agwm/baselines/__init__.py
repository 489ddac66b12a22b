"""The finetuning methods the paper compares against, each a change to the plain finetune loop
(:class:`agwm.recipes.Recipe`): one module per idea."""
