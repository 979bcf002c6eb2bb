//! The one shell script kinit runs on each host to learn its facts, and the pure parser of its
//! output. One SSH round trip per host: every reading is a section of the same output.
//!
//! The script only reads (it changes nothing) and never fails as a whole: a missing tool leaves
//! its section empty. It is one bash (50 hosts probed at once share the hosts' and the
//! operator's CPUs, and every fork + exec of a tool costs 1-5 ms of CPU): files under /proc and
//! /sys are read with `read` (one line) or `mapfile`, never a `while read` loop: bash seeks back
//! after each line it reads, and a seek in a /proc file makes the kernel generate it again up to
//! there (in /proc/net/tcp, a walk of the whole connection table per line: 0.2 s for 500
//! sockets). Listeners come from /proc/net/tcp{,6}, which lists them first, so the reading stops
//! at the first other socket (`ss -p`, which walks every process's descriptors, runs only when
//! one of the host's component ports is taken, or the first 999 sockets are all listeners: a
//! busy host's established and TIME-WAIT sockets must not count, or every probe of it pays for
//! `ss -p`, ~25 ms of CPU here); the
//! connects to other hosts are bash's /dev/tcp, and only `ip`, `df` (etcd hosts) and
//! `systemctl` (hosts running systemd) are forked. Measured here: ~11 ms of CPU per host, plus
//! ~1 ms per connect (a fork each: ~16 ms for a worker's 6), against ~45 ms for the earlier sh +
//! coreutils script. The container a host runs in is what systemd (PID 1) detected at boot and
//! wrote to /run/systemd/container (no file: none, or no systemd, which fails its own check):
//! `systemd-detect-virt` costs ~18 ms of CPU per host.
//!
//! A host without bash answers with a `no-bash` section only (a finding of its own, see
//! [`crate::facts::ProbeParseError::NoBash`]).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ssh::SshError;
use crate::ssh::quote::quote as q;

/// What the probe needs to know beyond the host itself.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// etcd's data directory, on hosts that run etcd: its free space and contents are checked.
    pub etcd_data_dir: Option<String>,
    /// Ports of other hosts this host will connect to once the cluster runs: the probe tells
    /// how a connect to each ends.
    pub connects: Vec<SocketAddr>,
    /// Ports the host's components will listen on: only their holders are looked up (pid, exe,
    /// unit), and only when one of them is taken.
    pub ports: Vec<u16>,
}

const MARK: &str = "==kinit:";
/// What the probe prints first, then waits (5 s at most) for a line on stdin before it reads the
/// host's clock: the operator answers as soon as this arrives, so the reading is taken between
/// the answer going out and the clock line coming back (see [`crate::facts::ReadingTimes`]).
pub const READY: &str = "==kinit:ready==\n";
/// How long a host waits for a connect to another host to end. On a working network a refusal
/// comes back within milliseconds; a connect still pending then is being dropped.
pub const CONNECT_TIMEOUT_SECS: u32 = 2;

/// The POSIX sh part: find bash, or say it is missing. `--norc` and the unset variables keep
/// bash from reading any rc file (Debian's bash reads ~/.bashrc when it sees SSH_CLIENT).
fn launcher(bash_script: &str) -> Result<String, SshError> {
    Ok(format!(
        "command -v bash >/dev/null 2>&1 || {{ printf '==kinit:no-bash==\\n==kinit:end==\\n'; exit 0; }}\n\
         unset BASH_ENV ENV SSH_CLIENT SSH2_CLIENT\n\
         exec bash --norc --noprofile -c {} kinit-probe\n",
        q(bash_script)?
    ))
}

/// The script for one host. Values interpolated into it are shell-quoted (a value no shell word
/// can carry, such as one with a NUL byte, is an error).
pub fn script(req: &ProbeRequest) -> Result<String, SshError> {
    launcher(&bash_script(req)?)
}

/// The bash part, on its own (what the host runs once bash is found).
pub fn bash_script(req: &ProbeRequest) -> Result<String, SshError> {
    // The wanted ports as /proc/net/tcp writes them (4 hex digits, upper case), and as a
    // pattern for `ss -Hltnp` lines (`ADDR:PORT` then blanks). Numbers only: nothing from the
    // config reaches the script here.
    let hex: String = req.ports.iter().map(|p| format!(" {p:04X}")).collect();
    let regex = req
        .ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("|");
    // The clock first, right after the operator's answer to READY, in one write (`replied`
    // when the answer came; without it, e.g. stdin at its end, only the probe's whole span
    // bounds the reading). bash 4 has no EPOCHREALTIME: `date` then.
    let mut s = String::from(
        r#"export LC_ALL=C
printf '==kinit:ready==\n'; r=no-reply; read -r -t 5 _ && r=replied
t=$EPOCHREALTIME; [ -n "$t" ] || t=$(date +%s.%N)
printf '==kinit:clock==\n%s\n%s\n' "$t" "$r"
sec() { printf '==kinit:%s==\n' "$1"; }
"#,
    );
    s.push_str(&format!("w='{hex} '; wr=':({regex})[[:space:]]'\n"));
    s.push_str(
        r#"sec uid; u=$EUID; echo "$u"
sec hostname; read -r x < /proc/sys/kernel/hostname && echo "$x"
sec machine-id; [ -r /etc/machine-id ] && read -r x < /etc/machine-id && echo "$x"
sec product-uuid; [ -r /sys/class/dmi/id/product_uuid ] && read -r x < /sys/class/dmi/id/product_uuid && echo "$x"
sec macs; for d in /sys/class/net/*; do n=${d##*/}; [ "$n" = lo ] && continue; [ -e "$d/device" ] || [ -e "$d/address" ] || continue; a=; [ -r "$d/address" ] && read -r a < "$d/address"; echo "$n $a"; done
sec cpu-list; mapfile -t a < /proc/self/status; for x in "${a[@]}"; do case $x in Cpus_allowed_list:*) echo "${x#*:}";; esac; done
sec meminfo; mapfile -t a < /proc/meminfo; for x in "${a[@]}"; do case $x in MemTotal:*|SwapTotal:*) echo "$x";; esac; done
sec swaps; mapfile -t a < /proc/swaps; printf '%s\n' "${a[@]}"
sec kernel; read -r x < /proc/sys/kernel/osrelease && echo "$x"
sec os-release; [ -r /etc/os-release ] && mapfile -t a < /etc/os-release && printf '%s\n' "${a[@]}"
sec ip-forward; read -r x < /proc/sys/net/ipv4/ip_forward && echo "$x"
sec commands; (PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin; for c in ip iptables ip6tables mount nsenter; do command -v "$c" >/dev/null 2>&1 && echo "$c"; done)
sec modules; [ -r /proc/modules ] && mapfile -t a < /proc/modules && printf '%s\n' "${a[@]%% *}"; for m in br_netfilter overlay; do [ -d /sys/module/$m ] && echo $m; done
sec cgroup; if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup2fs; elif [ -d /sys/fs/cgroup/systemd ] || [ -d /sys/fs/cgroup/cpu ]; then echo tmpfs; fi
sec systemd; [ -d /run/systemd/system ] && echo yes || echo no
sec container; [ -r /run/systemd/container ] && read -r x < /run/systemd/container && echo "$x"
sec sudo; if [ "$u" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo nopasswd; else echo password; fi
sec tcp-listen; h=; for f in /proc/net/tcp /proc/net/tcp6; do [ -r $f ] || continue; mapfile -t -n 1000 a < $f; m=; for x in "${a[@]:1}"; do set -f; set -- $x; set +f; [ "$4" = 0A ] || { m=1; break; }; echo "$2"; [[ $w == *" ${2##*:} "* ]] && h=1; done; [ ${#a[@]} = 1000 ] && [ -z "$m" ] && h=1; done
sec listeners; [ -n "$h" ] && l=$(ss -Hltnp 2>/dev/null) && [ -n "$l" ] && printf '%s\n' "$l"
sec processes; [ -n "$h" ] && for p in $(printf '%s\n' "$l" | grep -E "$wr" | grep -o 'pid=[0-9]*' | sort -u); do p=${p#pid=}; echo "pid $p"; echo "exe $(readlink /proc/$p/exe 2>/dev/null | tr '\n' ' ')"; c=$(grep -m1 -E '^0::|:name=systemd:' /proc/$p/cgroup 2>/dev/null | cut -d: -f3- | tr -d '\n'); echo "cgroup $c"; u=${c##*/}; case $u in *.service) m=$(systemctl show -p MainPID --value "$u" 2>/dev/null); echo "main-exe $(readlink /proc/${m:-0}/exe 2>/dev/null | tr '\n' ' ')";; esac; echo "cmd $(head -c 300 /proc/$p/cmdline 2>/dev/null | tr '\000\n' '  ')"; done
sec time-services; [ -d /run/systemd/system ] && ts=$(systemctl show -p Id -p LoadState -p ActiveState chrony chronyd systemd-timesyncd ntp ntpsec 2>/dev/null) && echo "$ts"
sec ntp-synchronized; [[ $ts == *ActiveState=active* ]] && timedatectl show -p NTPSynchronized --value 2>/dev/null
sec ip-addr; ip -o addr show 2>/dev/null
"#,
    );
    if let Some(dir) = &req.etcd_data_dir {
        let dir = q(dir)?;
        s.push_str(&format!(
            "sec etcd-dir; d={dir}; if [ -d \"$d\" ]; then echo exists; shopt -s nullglob dotglob; e=(\"$d\"/*); for x in \"${{e[@]:0:20}}\"; do echo \"${{x##*/}}\"; done; shopt -u nullglob dotglob; else echo absent; fi\n"
        ));
        // The data-dir line of the etcd config kinit writes: a stopped member of ours is told
        // apart from another install's data by it.
        let config = q(crate::host_paths::ETCD_CONFIG)?;
        s.push_str(&format!(
            "sec etcd-config; c={config}; if [ -f \"$c\" ]; then mapfile -t cl < \"$c\"; for x in \"${{cl[@]}}\"; do [[ $x == data-dir:* ]] && echo \"${{x#data-dir:}}\"; done; fi\n"
        ));
        // Free space where the data directory is, or would be created.
        s.push_str(
            "sec etcd-df; p=$d; while [ ! -e \"$p\" ]; do case $p in /*/*) p=${p%/*};; *) p=/;; esac; done; df -Pk -- \"$p\" 2>/dev/null\n",
        );
    }
    // Every connect at once, each a forked subshell whose /dev/tcp does the connect, all under
    // one reader that stops waiting after CONNECT_TIMEOUT_SECS (no `timeout` binary, no second
    // bash). Each is first written as a timeout; one that connects is written again as open,
    // one that fails makes bash say why (`...: /dev/tcp/ADDR/PORT: Connection refused`); the
    // last word on an address and port wins. At the deadline the connects still pending are
    // killed by the subshell that started them (its TERM trap), so none outlives the probe.
    s.push_str("sec reach\n");
    if !req.connects.is_empty() {
        let targets = req
            .connects
            .iter()
            .map(|a| q(&format!("{} {}", a.ip(), a.port())))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        s.push_str(&format!(
            r#"printf '%s timeout\n' {targets}
us() {{ if [ -n "$EPOCHREALTIME" ]; then n=${{EPOCHREALTIME/[.,]/}}; else n=$((SECONDS * 1000000)); fi; }}
set -f
exec {{r}}< <(exec 2>/dev/null; trap 'kill $(jobs -p)' TERM; for t in {targets}; do set -- $t; (exec 3<>"/dev/tcp/$1/$2" && echo "$1 $2 open") 2>&1 & done; wait)
k=$!; set +f; us; dl=$((n + {CONNECT_TIMEOUT_SECS}000000))
while :; do us; l=$((dl - n)); [ $l -gt 0 ] || {{ s=142; break; }}; printf -v l '%d.%06d' $((l / 1000000)) $((l % 1000000)); read -r -t $l -u $r x; s=$?; [ $s = 0 ] || break; printf '%s\n' "$x"; done
[ $s -gt 128 ] && kill $k 2>/dev/null; exec {{r}}<&-
"#
        ));
    }
    s.push_str("sec end\n");
    Ok(s)
}

/// The probe's output cut into its named sections.
pub fn sections(output: &str) -> HashMap<&str, Vec<&str>> {
    let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(MARK).and_then(|r| r.strip_suffix("==")) {
            current = Some(name);
            map.entry(name).or_default();
        } else if let Some(name) = current {
            map.entry(name).or_default().push(line);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_the_data_dir_and_lists_connects() {
        let req = ProbeRequest {
            etcd_data_dir: Some("/var/lib/my etcd".into()),
            connects: vec!["10.0.0.12:2380".parse().unwrap()],
            ports: vec![2379, 2380],
        };
        let s = bash_script(&req).unwrap();
        assert!(s.contains("d='/var/lib/my etcd'; if [ -d \"$d\" ]"), "{s}");
        assert!(
            s.contains("printf '%s timeout\\n' '10.0.0.12 2380'\n"),
            "{s}"
        );
        assert!(
            s.contains("w=' 094B 094C '; wr=':(2379|2380)[[:space:]]'\n"),
            "{s}"
        );
        assert!(s.starts_with("export LC_ALL=C\n"), "{s}");
        // The probe looks for exactly the commands preflight asks about.
        assert!(s.contains(&format!(
            "for c in {}; do",
            super::super::NODE_COMMANDS.join(" ")
        )));
        assert!(s.ends_with("sec end\n"));
        // The launcher carries the bash part as one quoted word.
        let whole = script(&req).unwrap();
        let words = shlex::split(&whole[whole.find("exec bash").unwrap()..]).unwrap();
        assert_eq!(words[..4], ["exec", "bash", "--norc", "--noprofile"]);
        assert_eq!(words[5], s);
    }

    #[test]
    fn hosts_without_etcd_skip_its_directory() {
        let s = bash_script(&ProbeRequest::default()).unwrap();
        assert!(!s.contains("etcd-dir") && !s.contains("df "), "{s}");
        assert!(!s.contains("/dev/tcp"), "no connects asked: {s}");
    }

    #[test]
    fn sections_split_on_markers() {
        let out = "==kinit:a==\n1\n2\n==kinit:b==\n==kinit:c==\nx\n";
        let s = sections(out);
        assert_eq!(s["a"], ["1", "2"]);
        assert!(s["b"].is_empty());
        assert_eq!(s["c"], ["x"]);
    }
}
