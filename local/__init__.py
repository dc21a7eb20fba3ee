"""Runs the deployed design on a laptop: moto for SQS, the Lambda Runtime
Interface Emulator for the function, and an emulated event source mapping.
Everything is configured from the synthesized template, so local and deployed
behaviour come from one definition.
"""
