"""Capacity planning: from a workload and a stage to concurrency, scaling time, age and cost.

``planner`` answers in closed form; ``simulation`` runs the event source mapping and the function
as a seeded discrete-event model, so the tests can check one against the other.
"""
