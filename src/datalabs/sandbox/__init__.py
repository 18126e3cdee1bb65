"""The one place for containment (DESIGN §5): everything that stands between a user's code and the host.

Labs, CWL tool runs, Toil runs and datalab builds are all started through this package, and every
privileged operation on something a sandbox could have shaped goes through it:

- `identity`: the uid (one per user) and groups (one per team) a sandbox runs as;
- `bwrap`: the bubblewrap command line (mounts, namespaces, seccomp filter, pids limit);
- `network`: per-sandbox network namespaces (loopback only, or outbound through pasta) and the
  platform API reached through a unix socket bound in;
- `seccomp`: the default-deny list of dangerous system calls;
- `fs`: walks of trees a sandbox wrote, from directory fds, never following links;
- `parsing`, `budget`: bounded parsing of untrusted documents, and running expensive parsing within a
  memory and time budget; `cwlrefs`: the files a CWL document makes cwltool read, kept in its folder;
- `quota`: workspace quotas enforced where the bytes are written.
"""
