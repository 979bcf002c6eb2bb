#!/bin/bash
# usage: start.sh [extra nspawn args...]; writes /tmp/fastbed/nspawn.pid, log to nspawn.log
set -e
CG=kinit-fastbed
for c in cpu cpuacct cpuset memory devices freezer blkio pids systemd unified hugetlb; do
  d=/sys/fs/cgroup/$c
  [ -d $d ] || continue
  own=$(awk -F: -v c="$c" '($2==c)||(c=="systemd"&&$2=="name=systemd")||(c=="unified"&&$2==""){print $3}' /proc/self/cgroup)
  mkdir -p $d$own/$CG 2>/dev/null || mkdir -p $d/$CG
done
# cpuset needs cpus/mems populated
for f in cpuset.cpus cpuset.mems; do cat /sys/fs/cgroup/cpuset/$f > /sys/fs/cgroup/cpuset/$CG/$f; done
cat > /tmp/fastbed/launch.sh <<EOS
#!/bin/bash
for p in \$(find /sys/fs/cgroup -maxdepth 4 -type d -name $CG); do echo \$\$ > \$p/cgroup.procs; done
exec env \$NSPAWN_ENV systemd-nspawn --directory=/tmp/fastbed/root --machine=fastbed --hostname=fastbed --register=no --keep-unit --link-journal=no "\$@"
EOS
chmod +x /tmp/fastbed/launch.sh
setsid /tmp/fastbed/launch.sh "$@" > /tmp/fastbed/nspawn.log 2>&1 < /dev/null &
echo $! > /tmp/fastbed/nspawn.pid
echo started nspawn pid $(cat /tmp/fastbed/nspawn.pid)
