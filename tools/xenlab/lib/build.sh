# xenlab: build this tree's blktap (Release, ReadyToRun: JIT under TCG is what makes start-up slow), the
# verifying workload (tools/xenlab/workload/build.sh, when it is there) and, for the 'tests' and 'advisories'
# scenarios, the tests.

xl_build() {
    local scen=$1
    XL_BLKTAP_DIR="$XL_OUT/blktap"
    if [ -n "${XENLAB_BLKTAP_DLL:-}" ]; then
        XL_BLKTAP_DLL=$XENLAB_BLKTAP_DLL; xl_log "using the prebuilt $XL_BLKTAP_DLL (XENLAB_BLKTAP_DLL)"
    else
    xl_log "dotnet publish tools/BlkTap.Cli (Release, ReadyToRun) -> $XL_BLKTAP_DIR"
    if ! dotnet publish "$XL_REPO/tools/BlkTap.Cli" -c Release -r linux-x64 --self-contained false \
            -p:PublishReadyToRun=true -nologo -o "$XL_BLKTAP_DIR" >"$XL_OUT/build-blktap.log" 2>&1; then
        xl_log "ReadyToRun publish failed (see $XL_OUT/build-blktap.log); trying a plain build"
        dotnet publish "$XL_REPO/tools/BlkTap.Cli" -c Release -nologo -o "$XL_BLKTAP_DIR" >>"$XL_OUT/build-blktap.log" 2>&1 \
            || xl_die "dotnet publish tools/BlkTap.Cli failed (see $XL_OUT/build-blktap.log)"
    fi
    XL_BLKTAP_DLL="$XL_BLKTAP_DIR/blktap.dll"
    fi
    XL_VERIFY=""
    if [ -x "$XL_DIR/workload/build.sh" ]; then
        xl_log "building the verifying workload (tools/xenlab/workload/build.sh)"
        mkdir -p "$XL_OUT/workload"
        "$XL_DIR/workload/build.sh" "$XL_OUT/workload" >"$XL_OUT/build-workload.log" 2>&1 \
            || xl_die "tools/xenlab/workload/build.sh failed (see $XL_OUT/build-workload.log)"
        XL_VERIFY="$XL_OUT/workload/verify"
        [ -x "$XL_VERIFY" ] || xl_die "tools/xenlab/workload/build.sh made no $XL_VERIFY"
    else
        xl_log "no tools/xenlab/workload/build.sh: the domU uses the busybox stand-in workload"
    fi
    XL_TESTS_DLL=""
    if [[ " $scen " == *" tests "* || " $scen " == *" advisories "* ]]; then
        # Every [Category("RequiresXen")] test is in BlkTap.Xen.Tests (the Xen interop and backends' project). Published
        # ReadyToRun and run by its own entry point (LabRunner/LabRunnerProgram.cs, NUnit's in-process runner): under
        # TCG, vstest's test host took 4-6 minutes to start, the published runner starts in seconds.
        xl_log "dotnet publish tests/BlkTap.Xen.Tests (Release, ReadyToRun) -> $XL_OUT/tests"
        if ! dotnet publish "$XL_REPO/tests/BlkTap.Xen.Tests" -c Release -r linux-x64 --self-contained false \
                -p:PublishReadyToRun=true -nologo -o "$XL_OUT/tests" >"$XL_OUT/build-tests.log" 2>&1; then
            xl_log "ReadyToRun publish of the tests failed (see $XL_OUT/build-tests.log); trying a plain one"
            dotnet publish "$XL_REPO/tests/BlkTap.Xen.Tests" -c Release -nologo -o "$XL_OUT/tests" >>"$XL_OUT/build-tests.log" 2>&1 \
                || xl_die "dotnet publish tests/BlkTap.Xen.Tests failed (see $XL_OUT/build-tests.log)"
        fi
        XL_TESTS_DLL="$XL_OUT/tests/BlkTap.Xen.Tests.dll"
        [ -f "$XL_TESTS_DLL" ] || xl_die "the tests' publish made no $XL_TESTS_DLL"
    fi
}
