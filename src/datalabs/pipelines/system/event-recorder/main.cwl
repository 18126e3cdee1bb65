cwlVersion: v1.2
class: CommandLineTool
label: Event recorder
doc: >-
  Finds events in one low-fidelity power chunk (robust z-score over a rolling window) and keeps, for each,
  the high-fidelity window around it, cut from the high-fidelity chunks given or found in the station's
  high-fidelity folder.
requirements:
  InitialWorkDirRequirement:
    listing:
      - entryname: event_recorder.py
        entry:
          $include: event_recorder.py
baseCommand: [python3, event_recorder.py]
inputs:
  lowfi:
    type: File
    label: Low-fidelity chunk (CSV of time, power_dbm)
    inputBinding: {prefix: --lowfi}
  hifi:
    type: File[]?
    label: High-fidelity chunks (NetCDF) covering the chunk and its neighbours
    inputBinding: {prefix: --hifi}
  hifi_dir:
    type: Directory?
    label: The station's high-fidelity folder (the chunks an event needs are taken from it by time)
    inputBinding: {prefix: --hifi-dir}
  margin:
    type: float
    default: 10
    label: Seconds kept on each side of an event
    inputBinding: {prefix: --margin}
  threshold:
    type: float
    default: 6
    label: Robust z-score above which a sample is part of an event
    inputBinding: {prefix: --threshold}
  window:
    type: int
    default: 61
    label: Rolling window of the baseline, in samples
    inputBinding: {prefix: --window}
outputs:
  events:
    type: File
    outputBinding: {glob: events.json}
  kept:
    type: File[]
    outputBinding: {glob: "*_event.nc"}
