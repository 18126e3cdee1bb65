cwlVersion: v1.2
class: CommandLineTool
label: Hello world banner
doc: Writes the given text as a framed banner into banner.txt and prints it.
baseCommand: [sh, -c]
arguments:
  - >-
    line=`printf '%s' "$0" | sed 's/./=/g'`;
    printf '+=%s=+\n| %s |\n+=%s=+\n' "$line" "$0" "$line" > banner.txt;
    cat banner.txt
  - $(inputs.text)
inputs:
  text:
    type: string
    default: Hello, Datalabs!
    label: Text of the banner
outputs:
  banner:
    type: File
    outputBinding: {glob: banner.txt}
