# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_git_pushmirror_global_optspecs
    string join \n repo= h/help V/version
end

function __fish_git_pushmirror_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_git_pushmirror_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_git_pushmirror_using_subcommand
    set -l cmd (__fish_git_pushmirror_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -s V -l version -d 'Print version'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "add" -d 'Add a mirror (validated before it is written; the first full sync starts at once)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "list" -d 'List the mirrors of the repository'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "show" -d 'Show one mirror\'s configuration'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "set" -d 'Change mirror settings: `set NAME key=value...` (e.g. debounce=5s keep_divergent_refs=true auth.username=bot)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "remove" -d 'Remove a mirror, its state and its generated key pair'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "keygen" -d 'Generate an ed25519 key pair for an SSH mirror and print the public key (for a deploy key); an existing generated pair is replaced (key rotation)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "detect-host-key" -d 'Fetch the SSH host keys of a mirror\'s host (ssh-keyscan), print their SHA256 fingerprints and pin them (pushmirror/keys/NAME.known_hosts)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "enable" -d 'Enable a mirror (it gets a full sync)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "disable" -d 'Disable a mirror (nothing is pushed to it; compaction no longer waits for it)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "sync" -d 'Force a full sync now, bypassing the minimum interval (debounce) ("Update now")'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "status" -d 'Mirror health: exit 0 healthy, 1 when a mirror failed or is behind its max_delay'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "metrics" -d 'Write Prometheus metrics of every repository under DIR (node_exporter textfile format)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "sweep" -d 'Flush every repository under DIR with pending work, a due retry or a mirror never synced yet, within the concurrency limit (for a systemd timer or cron)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "install" -d 'Install the post-receive hook into the repository (or a shared hooks directory)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "uninstall" -d 'Remove the hook installed by `install` (a chained hook is put back)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "hook" -d 'Run as a hook: `hook post-receive` (what the installed wrapper calls)'
complete -c git-pushmirror -n "__fish_git_pushmirror_needs_command" -f -a "flush" -d 'Run the flusher in the foreground (normally started detached by the hook)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l debounce -d 'Minimum interval between two syncs of this mirror (default 1s), e.g. 500ms, 5s: a push to an idle mirror syncs at once, pushes within the interval go out together after it' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l max-delay -d 'Sync at most this long after the first pending push (default 5m; 1m protected-only)' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l timeout -d 'Bound on each ls-remote and push (default 2m)' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l protected -d 'Protected branch pattern (repeatable), e.g. main, release/*' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l branch-regex -d 'Mirror only branches this regex matches (RE2 syntax, unanchored, at most 255 characters; all tags are still mirrored and mirror-only branches are never deleted)' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l refs -d 'Extra ref prefix to mirror (repeatable), e.g. refs/notes/' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l ca-file -d 'CA bundle for a mirror behind a private CA' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l lfs -d 'Send Git LFS objects: auto (when the upstream has an LFS store), on, off' -r -f -a "auto\t''
on\t''
off\t''"
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l username -d 'Username for password/token auth' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l password-file -d 'File holding the password or token (must not be group/world readable)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l password-env -d 'Environment variable holding the password or token' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l ssh-key -d 'SSH private key for ssh:// mirrors' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l known-hosts -d 'known_hosts file for the mirror\'s host (strict host key checking is always on)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l host-key -d 'Pinned host key, e.g. "ssh-ed25519 AAAA..."' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l host-key-fingerprint -d 'With --detect-host-key: pin only a key with this fingerprint, fail if none has it (repeatable)' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l keep-divergent-refs -d 'Leave mirror refs that diverged from upstream alone (and report them)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l only-protected-branches -d 'Mirror only branches matching --protected (and all tags)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l allow-insecure-http -d 'Accept an http:// URL (credentials would travel in clear)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l disabled -d 'Add it disabled (no sync until `enable`)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l generate-ssh-key -d 'Generate an ed25519 key pair for this mirror (pushmirror/keys/NAME) and print the public key to add as a deploy key; no sync starts until `sync NAME` or the next push'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -l detect-host-key -d 'Fetch the host\'s SSH keys (ssh-keyscan, the URL\'s port), print their fingerprints and pin them'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand add" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand list" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand list" -l json
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand list" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand show" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand show" -l json
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand show" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand set" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand set" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand remove" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand remove" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand keygen" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand keygen" -l rule -d 'For a server rule (no repository needed)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand detect-host-key" -l host-key-fingerprint -d 'Pin only a key with this fingerprint (repeatable), e.g. SHA256:+DiY3wvv...' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand detect-host-key" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand detect-host-key" -l rule -d 'For a server rule: pin into keys/NAME.known_hosts next to the server-wide config'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand detect-host-key" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand enable" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand enable" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand disable" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand disable" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -l root -d 'With --all: the root (default: `root` of the server-wide config)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -l url -d 'With --all: only mirrors whose URL (as `status` shows it, credentials masked) matches this git wildcard, e.g. \'https://github.com/acme/*\'' -r
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -l wait -d 'Wait for the sync and exit non-zero if it failed'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -l all -d 'Every enabled mirror of every repository under the root, within `concurrency`'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sync" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand status" -l root -d 'Every repository under DIR (default: `root` of the server-wide config), unhealthy first' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand status" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand status" -l json
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand status" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand metrics" -l root -d 'The root (default: `root` of the server-wide config)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand metrics" -l output -d 'Write to FILE atomically (temp file + rename) instead of stdout; name it *.prom in node_exporter\'s --collector.textfile.directory' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand metrics" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sweep" -l root -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sweep" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand sweep" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand install" -l hooks-dir -d 'Install into this hooks directory instead of one repository\'s (shared by many)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand install" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand install" -l chain -d 'Keep an existing foreign post-receive hook and run it first'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand install" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand uninstall" -l hooks-dir -d 'Remove it from this hooks directory instead of one repository\'s' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand uninstall" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand hook" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand hook" -s h -l help -d 'Print help'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand flush" -l repo -d 'The bare repository (default: $GIT_DIR, else the repository of the current directory)' -r -F
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand flush" -l once -d 'One attempt per due mirror, then exit: a failed mirror\'s backoff is left to the next sweep or push (what `sweep` runs)'
complete -c git-pushmirror -n "__fish_git_pushmirror_using_subcommand flush" -s h -l help -d 'Print help'
