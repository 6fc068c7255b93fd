"""The pure core: join, health, inference, pacing, the ladder, the merge of hosts, the sanitizer.

Time is a parameter; no I/O, no clock, no disk, nothing drawn (no Rich, no Textual).
"""
