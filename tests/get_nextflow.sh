#!/usr/bin/env bash
# Obtain a runnable Nextflow for the sci2cl-nf tests and print the path of its launcher.
#
#   1. $NEXTFLOW (an executable path) or `nextflow` on PATH is used as is
#      (set SCI2CL_NF_FROM_MAVEN=1 to ignore PATH).
#   2. Otherwise io.nextflow:nextflow:<ver> is resolved from Maven Central with
#      `mvn dependency:copy-dependencies` into a cache directory, and a launcher script
#      `nextflow` is written next to the jars. It runs
#          java <JVM flags of the official launcher> -cp 'lib/*' nextflow.cli.Launcher "$@"
#      Versions are tried newest first; override with NXF_MAVEN_VERSIONS="24.10.5 24.10.0".
#
# Maven Central is incomplete for the 24.10 line: io.nextflow:nextflow is published for
# 24.10.0/.4/.5/.6, but its sibling modules are not (nf-commons: 24.10.0/.4/.5;
# nf-httpfs: 24.10.0 only). The sources of modules/nf-commons and modules/nf-httpfs are
# identical in the tags v24.10.0 .. v24.10.6 (`git diff --stat v24.10.0 v24.10.6 --
# modules/nf-commons modules/nf-httpfs` is empty), and the version/build info lives in the
# nextflow jar itself. So when such a sibling jar is missing, the newest published patch of
# the same 24.10 line not newer than the requested one is used instead; every substitution is
# logged and recorded in <install>/SUBSTITUTIONS. SCI2CL_NF_STRICT=1 disables substitution.
#
# Cache: ${SCI2CL_NF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sci2cl-nf}/nextflow-<ver>/{lib/,nextflow}
# Runs offline afterwards: the local executor needs no plugin (see tests/test_pipeline.py for
# the environment used: NXF_OFFLINE=true, NXF_DISABLE_CHECK_LATEST=true).
# stdout is exactly the launcher path; progress goes to stderr.
set -euo pipefail

log() { printf '[get_nextflow] %s\n' "$*" >&2; }

if [[ -n "${NEXTFLOW:-}" && -x "${NEXTFLOW}" ]]; then
    echo "${NEXTFLOW}"; exit 0
fi
if [[ "${SCI2CL_NF_FROM_MAVEN:-0}" != 1 ]] && command -v nextflow >/dev/null 2>&1; then
    command -v nextflow; exit 0
fi

command -v java >/dev/null 2>&1 || { log "java not found (Nextflow 24.10 needs Java 11-23)"; exit 1; }

cache_root="${SCI2CL_NF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sci2cl-nf}"
versions="${NXF_MAVEN_VERSIONS:-24.10.6 24.10.5 24.10.4 24.10.0}"

for ver in $versions; do
    if [[ -x "$cache_root/nextflow-$ver/nextflow" && -f "$cache_root/nextflow-$ver/lib/.complete" ]]; then
        echo "$cache_root/nextflow-$ver/nextflow"; exit 0
    fi
done

command -v mvn >/dev/null 2>&1 || { log "neither nextflow nor mvn found on PATH"; exit 1; }

write_launcher() {  # $1 = install dir, $2 = version
    local dir="$1" ver="$2"
    cat > "$dir/nextflow.tmp" <<LAUNCHER
#!/usr/bin/env bash
# Nextflow $ver launcher written by sci2cl-nf tests/get_nextflow.sh (jars from Maven Central).
# Passes the same JVM options as the official 'nextflow' launcher script of 24.10.
set -euo pipefail
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "\${NXF_JAVA_HOME:-}" ]]; then java_cmd="\$NXF_JAVA_HOME/bin/java"
elif [[ -n "\${JAVA_HOME:-}" && -x "\${JAVA_HOME}/bin/java" ]]; then java_cmd="\$JAVA_HOME/bin/java"
else java_cmd="\$(command -v java)"; fi
opts=(-Dfile.encoding=UTF-8 -Dcapsule.trampoline "-Dcapsule.java.cmd=\$java_cmd"
      -Dcom.sun.security.enableAIAcaIssuers=true -Djava.awt.headless=true)
[[ "\${1:-}" != run && "\${1:-}" != node ]] && opts+=(-XX:+TieredCompilation -XX:TieredStopAtLevel=1)
[[ -n "\${NXF_OPTS:-}" ]] && opts+=(\$NXF_OPTS)
[[ -n "\${NXF_TEMP:-}" ]] && opts+=("-Djava.io.tmpdir=\$NXF_TEMP")
[[ -n "\${NXF_JVM_ARGS:-}" ]] && opts+=(\$NXF_JVM_ARGS)
for p in java.lang java.io java.nio java.net java.util java.util.concurrent.locks \\
         java.util.concurrent.atomic java.nio.file.spi sun.nio.ch sun.nio.fs \\
         sun.net.www.protocol.http sun.net.www.protocol.https sun.net.www.protocol.ftp \\
         sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm java.util.regex; do
    opts+=("--add-opens=java.base/\$p=ALL-UNNAMED")
done
# newer JDKs warn about native access (jline, leveldb); newer launchers pass this flag
jv="\$("\$java_cmd" -version 2>&1 | awk -F'"' '/version/ {print \$2; exit}')"
jmajor="\${jv%%.*}"
if [[ "\$jmajor" =~ ^[0-9]+\$ ]] && (( jmajor >= 22 )); then
    opts+=(--enable-native-access=ALL-UNNAMED)
fi
export NXF_VER="$ver"
export NXF_PLUGINS_DIR="\${NXF_PLUGINS_DIR:-\${NXF_HOME:-\$HOME/.nextflow}/plugins}"
exec "\$java_cmd" "\${opts[@]}" -cp "\$here/lib/*" nextflow.cli.Launcher "\$@"
LAUNCHER
    chmod +x "$dir/nextflow.tmp"
    mv "$dir/nextflow.tmp" "$dir/nextflow"
}

write_pom() {  # $1 = dir, $2 = version, $3 = dependencyManagement entries
    cat > "$1/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sci2cl-nf</groupId>
  <artifactId>nextflow-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>$3
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.nextflow</groupId>
      <artifactId>nextflow</artifactId>
      <version>$2</version>
    </dependency>
  </dependencies>
</project>
POM
}

# newest published patch of io.nextflow:<artifact> in the major.minor line of <ver>, not newer
find_substitute() {  # $1 = artifact, $2 = version
    local art="$1" ver="$2" mm patch p
    mm="${ver%.*}"; patch="${ver##*.}"
    [[ "$patch" =~ ^[0-9]+$ ]] || return 1
    for (( p = patch - 1; p >= 0; p-- )); do
        if mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get \
               -Dartifact="io.nextflow:$art:$mm.$p" -Dtransitive=false >/dev/null 2>&1; then
            echo "$mm.$p"; return 0
        fi
    done
    return 1
}

mkdir -p "$cache_root"
errors=""
for ver in $versions; do
    dir="$cache_root/nextflow-$ver"
    work="$dir.partial"
    rm -rf "$work"; mkdir -p "$work/lib"
    managed=""; : > "$work/SUBSTITUTIONS"
    ok=0
    for attempt in 1 2 3 4; do
        write_pom "$work" "$ver" "$managed"
        log "resolving io.nextflow:nextflow:$ver from Maven Central (attempt $attempt)"
        if mvn -B -q -f "$work/pom.xml" \
               org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
               -DincludeScope=runtime -DoutputDirectory="$work/lib" >"$work/mvn.log" 2>&1; then
            ok=1; break
        fi
        missing=$(grep -oE 'io\.nextflow:[A-Za-z0-9_.-]+:jar:[0-9][^ ,:]*' "$work/mvn.log" | sort -u || true)
        if [[ -z "$missing" || "${SCI2CL_NF_STRICT:-0}" == 1 ]]; then break; fi
        progress=0
        for m in $missing; do
            art=$(cut -d: -f2 <<<"$m"); mver=$(cut -d: -f4 <<<"$m")
            [[ "$art" == nextflow ]] && continue
            if sub=$(find_substitute "$art" "$mver"); then
                log "io.nextflow:$art:$mver is not on Maven Central; using $art:$sub (same 24.10 sources)"
                echo "io.nextflow:$art:$mver -> $sub" >> "$work/SUBSTITUTIONS"
                managed+="
    <dependency><groupId>io.nextflow</groupId><artifactId>$art</artifactId><version>$sub</version></dependency>"
                progress=1
            fi
        done
        (( progress )) || break
    done
    if (( ok )) && [[ -f "$work/lib/nextflow-$ver.jar" ]]; then
        write_launcher "$work" "$ver"
        if "$work/nextflow" -version >"$work/version.log" 2>&1 && grep -q "version $ver" "$work/version.log"; then
            touch "$work/lib/.complete"
            rm -rf "$dir"; mv "$work" "$dir"   # the launcher finds its jars relative to itself
            log "installed Nextflow $ver in $dir"
            echo "$dir/nextflow"; exit 0
        fi
        errors+=$'\n'"  $ver: 'nextflow -version' failed: $(tail -5 "$work/version.log")"
    else
        errors+=$'\n'"  $ver: mvn failed: $(grep -E '^\[ERROR\]' "$work/mvn.log" | head -2)"
    fi
    log "Nextflow $ver is not usable from Maven Central; trying the next version"
done
log "could not obtain a runnable Nextflow from Maven Central:$errors"
exit 1
