cwlVersion: v1.2
class: CommandLineTool
label: FITS thumbnail
doc: PNG thumbnail and header listing of a FITS image.
requirements:
  InitialWorkDirRequirement:
    listing:
      - entryname: fits_thumbnail.py
        entry:
          $include: fits_thumbnail.py
baseCommand: [python3, fits_thumbnail.py]
inputs:
  fits:
    type: File
    label: FITS file
    inputBinding: {position: 1}
  size:
    type: int
    default: 256
    label: Longest side in pixels
    inputBinding: {position: 2}
outputs:
  thumbnail:
    type: File
    outputBinding: {glob: thumbnail.png}
  header:
    type: File
    outputBinding: {glob: header.txt}
