"""The team family: a pipeline of phases for a task, owning `team-<team_id>`.

`routing` reads an `@team` message; `plans` reads the lead's plan and reviews
(repairing malformed JSON); `logic` folds the team's events, names its next
steps and decides what each outcome records (pure); `actor` runs the steps in
its driver, concurrently where phases are independent, asking the experts
(`actors.experts`) over NATS; `prompts` shapes what the models see.
"""
