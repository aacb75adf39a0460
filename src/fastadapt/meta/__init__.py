"""How the learner is trained: bilevel meta-training of learned losses."""
