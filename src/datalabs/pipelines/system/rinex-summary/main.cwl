cwlVersion: v1.2
class: CommandLineTool
label: RINEX quality summary
doc: Quality summary of a RINEX observation file (completeness, satellites, observation types).
requirements:
  InitialWorkDirRequirement:
    listing:
      - entryname: rinex_summary.py
        entry:
          $include: rinex_summary.py
baseCommand: [python3, rinex_summary.py]
inputs:
  rinex:
    type: File
    label: RINEX observation file
    inputBinding: {position: 1}
outputs:
  summary_json:
    type: File
    outputBinding: {glob: summary.json}
  summary_txt:
    type: File
    outputBinding: {glob: summary.txt}
