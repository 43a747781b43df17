"""Lock formats: what each file under lock/ says, whether it is fresh against its declaration, and
the one table of lock kinds (locks/kinds.py) that lock-check, freeze and the archive walk."""
