"""`edgecam probe`: how fast each model runs on this device.

`measure` times the stages and builds the report, `report` renders it as text or a plot, and
`remote` runs a probe requested over MQTT (`<prefix>/cmd/probe`).
"""
