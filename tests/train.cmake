# The LibTorch trainer's tests (label "train"): the autograd unit test, and a short ORL training run.
#
# Included by tests/CMakeLists.txt. Also a `cmake -P` script: with -DTRAIN_EXE=... it runs the ORL check
# (see the bottom of this file).

if(NOT CMAKE_SCRIPT_MODE_FILE)
  set(_topofr_cuda_flags "${CMAKE_CUDA_FLAGS}")  # kept: see examples/train/CMakeLists.txt
  set(_topofr_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
  if(NOT Torch_FOUND)
    find_package(Torch QUIET)
  endif()
  set(CMAKE_CUDA_FLAGS "${_topofr_cuda_flags}")
  set(CMAKE_CUDA_ARCHITECTURES "${_topofr_cuda_archs}")
  # test_train_support (made by the test_*.cpp glob) checks examples/train/checkpoint.hpp, which uses zlib.
  if(TARGET test_train_support)
    find_package(ZLIB REQUIRED)
    target_link_libraries(test_train_support PRIVATE ZLIB::ZLIB)
  endif()
  set(train_test test_train_autograd)
  if(Torch_FOUND)
    if(NOT TARGET ${train_test})  # not created by the test_*.cpp glob
      add_executable(${train_test} ${CMAKE_CURRENT_SOURCE_DIR}/${train_test}.cpp $<TARGET_OBJECTS:topofr_catch_main>)
      target_link_libraries(${train_test} PRIVATE topofr_programs Catch2::Catch2)
      target_compile_definitions(${train_test} PRIVATE TOPOFR_PYTHON="${TOPOFR_PYTHON}"
        TOPOFR_ORACLES="${CMAKE_CURRENT_SOURCE_DIR}/oracles" TOPOFR_TEST_TMP="${CMAKE_CURRENT_BINARY_DIR}/tmp")
      add_test(NAME ${train_test} COMMAND ${train_test})
    endif()
    target_link_libraries(${train_test} PRIVATE ${TORCH_LIBRARIES})
    set_tests_properties(${train_test} PROPERTIES LABELS "cpu;train" SKIP_RETURN_CODE 77)
  elseif(TARGET ${train_test})  # the glob made it, but it needs LibTorch: keep it out of the build
    set_target_properties(${train_test} PROPERTIES EXCLUDE_FROM_ALL TRUE)
    set_tests_properties(${train_test} PROPERTIES DISABLED TRUE)
  endif()

  # The class-sharded head on Gloo (examples/train/sharded_head.hpp): ranks are processes re-executed from the
  # test binary (its own main), so no Catch main object; c10d's Gloo process group is in libtorch_cpu, its
  # header needs USE_C10D_GLOO and the Gloo headers (Debian libgloo-dev).
  if(Torch_FOUND)
    find_path(TOPOFR_GLOO_INCLUDE_DIR gloo/config.h)
    if(TOPOFR_GLOO_INCLUDE_DIR)
      add_executable(test_dist_head ${CMAKE_CURRENT_SOURCE_DIR}/test_dist_head.cpp)
      target_link_libraries(test_dist_head PRIVATE topofr_programs Catch2::Catch2 ${TORCH_LIBRARIES})
      target_include_directories(test_dist_head PRIVATE ${TOPOFR_GLOO_INCLUDE_DIR})
      target_compile_definitions(test_dist_head PRIVATE USE_C10D_GLOO TOPOFR_PYTHON="${TOPOFR_PYTHON}"
        TOPOFR_ORACLES="${CMAKE_CURRENT_SOURCE_DIR}/oracles" TOPOFR_TEST_TMP="${CMAKE_CURRENT_BINARY_DIR}/tmp")
      add_test(NAME test_dist_head COMMAND test_dist_head)
      set_tests_properties(test_dist_head PROPERTIES LABELS "cpu;train" TIMEOUT 120)
    else()
      message(STATUS "topofr: Gloo headers (Debian libgloo-dev) not found, test_dist_head is not built")
    endif()
  endif()

  # Resume after kill -9: a run killed after a checkpoint and resumed ends exactly as an uninterrupted run
  # (same final loss and verification, bit for bit: data order, RSP and dropout RNG are restored).
  if(TARGET topofr-train)
    add_test(NAME train_resume COMMAND sh -c [=[
      set -e
      exe="$1"; d="$2"
      args="--identities 8 --per-identity 8 --image-size 32 --batch 16 --steps 80 --checkpoint-every 10 --threads 1 --seed 3 --no-progress"
      rm -rf "$d"; mkdir -p "$d"
      "$exe" $args --out "$d/full" > "$d/full.log" 2>&1
      "$exe" $args --out "$d/cut" > "$d/cut1.log" 2>&1 &
      pid=$!
      while [ ! -f "$d/cut/checkpoint.pt" ]; do sleep 0.02; done
      kill -9 $pid; wait $pid || true
      "$exe" $args --out "$d/cut" --resume > "$d/cut2.log" 2>&1
      grep 'resumed from' "$d/cut2.log"
      if grep -q 'at step 80/80' "$d/cut2.log"; then echo "the run finished before the kill"; exit 1; fi
      for f in full cut; do
        grep -E '"(final_loss|accuracy|auc)"' "$d/$f/report.json" > "$d/$f.key"
        cut -d, -f1-9 "$d/$f/log.csv" >> "$d/$f.key"  # the timing columns differ
      done
      diff "$d/full.key" "$d/cut.key"
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_resume)
    set_tests_properties(train_resume PROPERTIES LABELS "cpu;train" TIMEOUT 300)
  endif()

  # Outputs and checkpoints under hostile conditions (one short run, then --resume on damaged copies):
  # * --report naming a character device (root: mknod) or a link to /dev/null: written in place, the node
  #   and the link survive (temp + rename used to replace them by a regular file);
  # * 64 bytes flipped inside a checkpoint member: --resume refuses, naming the file and the member;
  # * a truncated checkpoint: one line naming the file, no C++ backtrace;
  # * other flags: the differing flags by name, checkpoint vs this run;
  # * no python3/matplotlib: one warning line, exit 0, the other outputs written.
  if(TARGET topofr-train)
    add_test(NAME train_outputs_resume COMMAND sh -c [=[
      set -e
      exe="$1"; d="$2"
      args="--identities 4 --per-identity 6 --image-size 16 --width 0.05 --embedding 16 --batch 8 --steps 4 --checkpoint-every 2 --threads 1 --no-progress"
      rm -rf "$d"; mkdir -p "$d"; cd "$d"
      ln -s /dev/null link
      dev=link
      if [ "$(id -u)" = 0 ] && mknod null c 1 3 2>/dev/null; then dev=null; fi
      "$exe" $args --out o --report "./$dev" > run.log 2>&1
      test -c "$(readlink -f "$dev")" || { echo "--report $dev: the device node was replaced"; ls -l; exit 1; }
      test -c null || test ! -e null
      "$exe" $args --out o --report link --no-plots > run2.log 2>&1
      test -L link || { echo "--report link: the link was replaced"; exit 1; }
      for f in log.csv checkpoint.pt topology.json loss.png persistence.png discrepancy.png discrepancy_untrained.png; do
        test -s "o/$f" || { echo "missing o/$f"; exit 1; }
      done
      if ls o | grep -q tmp; then echo "temporary files left in o/"; ls o; exit 1; fi

      expect_fail() {  # name, pattern...: --resume fails with exit 1, one error line matching every pattern
        name="$1"; shift
        if "$exe" $args --out "$name" --resume "$@" > "$name.log" 2>&1; then echo "$name: --resume succeeded"; cat "$name.log"; exit 1; fi
        if grep -q 'frame #' "$name.log"; then echo "$name: C++ backtrace printed"; cat "$name.log"; exit 1; fi
        test "$(grep -c . "$name.log")" -le 4 || { echo "$name: too many lines"; cat "$name.log"; exit 1; }
      }
      cp -r o flip
      size=$(wc -c < o/checkpoint.pt)
      head -c 64 /dev/zero | tr '\0' '\377' | dd of=flip/checkpoint.pt bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
      expect_fail flip
      grep "error: --resume: flip/checkpoint.pt: member '.*': CRC-32 mismatch" flip.log

      cp -r o cut
      head -c $((size / 2)) o/checkpoint.pt > cut/checkpoint.pt
      expect_fail cut
      grep "error: --resume: cut/checkpoint.pt: truncated" cut.log

      cp -r o flags
      expect_fail flags --lr 0.05 --steps 6
      grep -- "flags/checkpoint.pt was written with other flags: --steps 4 (checkpoint) vs 6 (this run); --lr 0.1 (checkpoint) vs 0.05 (this run)" flags.log

      TOPOFR_TRAIN_PYTHON=/nonexistent/python3 "$exe" $args --out nopy > nopy.log 2>&1
      test "$(grep -c 'plots not written' nopy.log)" = 1
      test -s nopy/report.json && test -s nopy/log.csv && test ! -e nopy/loss.png
      printf '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n' > nompl; chmod +x nompl
      TOPOFR_TRAIN_PYTHON="$PWD/nompl" "$exe" $args --out nompl.out > nompl.log 2>&1
      grep -c 'has no matplotlib' nompl.log
      test -s nompl.out/report.json
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_outputs_resume)
    set_tests_properties(train_outputs_resume PROPERTIES LABELS "cpu;train" TIMEOUT 300)
  endif()

  # Bad flags (CLI11): exit 1 and one line naming the flag and the value, before any work.
  if(TARGET topofr-train)
    add_test(NAME train_bad_flags COMMAND sh -c [=[
      exe="$1"; d="$2"; rm -rf "$d"; mkdir -p "$d"; cd "$d"
      check() {  # expected words..., then -- and the arguments
        words=""; while [ "$1" != "--" ]; do words="$words|$1"; shift; done; shift
        if "$exe" --out o "$@" > out.log 2>&1; then echo "accepted: $*"; exit 1; fi
        test "$(grep -c . out.log)" = 1 || { echo "not one line: $*"; cat out.log; exit 1; }
        IFS='|'; for w in ${words#|}; do grep -qF -- "$w" out.log || { echo "'$w' missing: $*"; cat out.log; exit 1; }; done; unset IFS
      }
      check --steps 0 -- --steps 0
      check --steps abc -- --steps abc
      check --batch 1.5 -- --batch 1.5
      check --loss nope -- --loss nope
      check --image-size 8x8 -- --image-size 8x8
      check --max-image-pixels 0 -- --max-image-pixels 0
      check --bogus -- --bogus
      check --depth 19 -- --depth 19
      check --seed abc -- --seed abc
      mkdir adir; ln -s nowhere dangling; touch afile
      check --report adir directory -- --report adir
      check --report dangling "dangling symbolic link" -- --report dangling
      check --out afile "not a directory" -- --out afile
      long="$(printf '%0100d' 7)x"
      check --steps "got '$long'" -- --steps "$long"
      check --identities 1 -- --identities 1
      test ! -e o || { echo "outputs written for bad flags"; exit 1; }
      mkdir -p data/a data/b
      printf '\000\000\002\000\000\000\000\000\000\000\000\000\001\000\001\000\030\000' > data/a/tga.png
      check "--data data" "data/a/tga.png" "not a PNG" -- --data data
      "$exe" --help | grep -q -- --max-image-pixels
      # Integer flags accept integral numbers in any notation (as before CLI11): 2.0, 1e0.
      "$exe" --out ok --steps 2.0 --checkpoint-every 1e0 --identities 4 --per-identity 4 --batch 4 --image-size 16 \
        --width 0.05 --embedding 8 --threads 1 --no-plots --no-progress > ok.log 2>&1 || { cat ok.log; exit 1; }
      grep -q '"steps": 2,' ok/report.json
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_bad_flags)
    set_tests_properties(train_bad_flags PROPERTIES LABELS "cpu;train" TIMEOUT 60)
  endif()

  # Several processes (docs/train.md, "Several processes and machines"). The tiny config: 6 synthetic identities
  # (4 train, 2 held out), 16 x 16, width 0.05, embedding 16, batch 12 (divisible by 2 and 3), one thread per
  # rank; --lr 0.01 (at 0.1 this net amplifies float rounding: even --threads 1 vs 2 moves row 2 by 1e-4).
  set(_topofr_dist_args "--identities 6 --per-identity 6 --image-size 16 --width 0.05 --embedding 16 --batch 12 --threads 1 --lr 0.01 --no-progress --no-plots")

  # (a) Oracle: a W-rank run computes by definition what one process computes with --chunks W (the backbone on
  # W slices of the global batch, BatchNorm statistics and ISA per slice, the head on the whole batch). So the
  # first two rows of log.csv (loss, loss_cls, loss_isa, ce_unweighted, gum_pi: the forward at step 1, and
  # at step 2 after one update with the all-reduced gradient) of --nproc W equal those of --chunks W within
  # relative 1e-5 (float; the sums run in another order: Gloo's all-reduce, the sharded softmax's combination).
  # Rank 0 alone writes log.csv and the report; each rank writes its checkpoint.
  if(TARGET topofr-train AND TOPOFR_GLOO_INCLUDE_DIR)  # several processes need Gloo (libgloo-dev)
    add_test(NAME train_dist_equivalence COMMAND sh -c [=[
      set -e
      exe="$1"; d="$2"; args="$3 --steps 2"
      rm -rf "$d"; mkdir -p "$d"; cd "$d"
      rows() {  # log A, log B: columns 4-8 of rows 1-2 within relative 1e-5
        awk -F, 'function abs(v) { return v < 0 ? -v : v }
          NR == FNR { if (FNR > 1) a[FNR] = $0; next }
          FNR > 1 { split(a[FNR], x, ","); n++
            for (k = 4; k <= 8; k++) { m = abs(x[k]) > abs($k) ? abs(x[k]) : abs($k)
              if (abs(x[k] - $k) > 1e-5 * m + 1e-12) { print FILENAME ": row " FNR - 1 ", column " k ": " x[k] " vs " $k; bad = 1 } } }
          END { if (n != 2) { print "expected 2 rows, got " n; exit 1 } exit bad }' "$1" "$2"
      }
      for w in 2 3; do
        "$exe" $args --out c$w --chunks $w > c$w.log 2>&1 || { cat c$w.log; exit 1; }
        timeout 120 "$exe" $args --out n$w --nproc $w > n$w.log 2>&1 || { cat n$w.log; exit 1; }
        rows c$w/log.csv n$w/log.csv
        grep -q "\"world_size\": $w," n$w/report.json
        test "$(ls n$w | grep -c "^checkpoint\.rank[0-9]-of-$w\.pt$")" = $w
        test ! -e n$w/checkpoint.pt
      done
      # and --chunks 1 is the plain trainer: --chunks 2 differs from it (BatchNorm per slice)
      "$exe" $args --out c1 > c1.log 2>&1
      if rows c1/log.csv c2/log.csv > /dev/null; then echo "--chunks 2 equals --chunks 1"; exit 1; fi
      # --margin-grad straight-through reaches the head's backward: the same first row, another second one
      "$exe" $args --out st --margin-grad straight-through > st.log 2>&1
      test "$(sed -n 2p st/log.csv | cut -d, -f4-8)" = "$(sed -n 2p c1/log.csv | cut -d, -f4-8)"
      test "$(sed -n 3p st/log.csv | cut -d, -f4-8)" != "$(sed -n 3p c1/log.csv | cut -d, -f4-8)"
      grep -q '"margin_grad": "straight-through"' st/report.json
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_dist_equivalence ${_topofr_dist_args})
    set_tests_properties(train_dist_equivalence PROPERTIES LABELS "cpu;train" TIMEOUT 180)
  endif()

  # (b) A rank that dies (the test-only hook TOPOFR_TRAIN_DIE_RANK / _STEP [/ _HOW=hang]), --dist-timeout 5:
  # * --nproc 2, rank 1 exits at step 4: the launcher stops rank 0 and exits 1 naming rank 1 and its status; the
  #   checkpoints of step 2 are intact: --resume continues from them to the end;
  # * ranks started one by one (--world-size 2 --rank r --master): rank 1 exits at step 2 -> rank 0 fails at
  #   once naming itself and the collective; rank 1 hangs instead (connections open) -> rank 0 times out
  #   after 5 s; rank 1 never starts -> rank 0's rendezvous times out. No case hangs (each under `timeout`).
  if(TARGET topofr-train AND TOPOFR_GLOO_INCLUDE_DIR)
    add_test(NAME train_dist_failure COMMAND sh -c [=[
      set -e
      exe="$1"; d="$2"; args="$3 --steps 6 --checkpoint-every 2 --dist-timeout 5"
      rm -rf "$d"; mkdir -p "$d"; cd "$d"
      rc=0; TOPOFR_TRAIN_DIE_RANK=1 TOPOFR_TRAIN_DIE_STEP=4 timeout 60 "$exe" $args --out a --nproc 2 > a.log 2>&1 || rc=$?
      test $rc = 1 || { echo "--nproc 2 with a dead rank: exit $rc"; cat a.log; exit 1; }
      grep -q "error: --nproc 2: rank 1 exited with status 1; the other ranks were stopped" a.log || { cat a.log; exit 1; }
      timeout 60 "$exe" $args --out a --nproc 2 --resume > a2.log 2>&1 || { cat a2.log; exit 1; }
      grep -q "at step 2/6" a2.log
      test "$(grep -c . a/log.csv)" = 7

      port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
      survivor() {  # name, how (exit|hang|absent), pattern: rank 0 must fail with one error line matching
        p=$(port)
        if [ "$2" != absent ]; then
          TOPOFR_TRAIN_DIE_HOW=$2 TOPOFR_TRAIN_DIE_RANK=1 TOPOFR_TRAIN_DIE_STEP=2 \
            "$exe" $args --out "$1" --world-size 2 --rank 1 --master 127.0.0.1:$p > "$1.1.log" 2>&1 &
          pid=$!
        fi
        rc=0; timeout 60 "$exe" $args --out "$1" --world-size 2 --rank 0 --master 127.0.0.1:$p > "$1.0.log" 2>&1 || rc=$?
        if [ "$2" != absent ]; then kill $pid 2>/dev/null || true; wait $pid || true; fi
        test $rc = 1 || { echo "$1: rank 0 exited $rc"; cat "$1.0.log"; exit 1; }
        grep "topofr-train: error: rank 0" "$1.0.log" | grep -q -- "$3" || { echo "$1: '$3' missing"; cat "$1.0.log"; exit 1; }
      }
      survivor b exit "all-gather.*failed on rank 0 of 2 (another rank died, or"
      survivor c hang "Timed out waiting 5000ms"
      survivor e absent "not formed within --dist-timeout 5 s"
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_dist_failure ${_topofr_dist_args})
    set_tests_properties(train_dist_failure PROPERTIES LABELS "cpu;train" TIMEOUT 180)
  endif()

  # (c) Resume with 2 processes is exact, as train_resume for one: the launcher killed (-9; its ranks die with
  # it) after the checkpoints of step 4, --resume, and the log and report equal an uninterrupted run's. Also:
  # a rank one checkpoint ahead of the other (a kill between their writes) goes back to its previous file;
  # another number of processes is refused naming the file.
  if(TARGET topofr-train AND TOPOFR_GLOO_INCLUDE_DIR)
    add_test(NAME train_dist_resume COMMAND sh -c [=[
      set -e
      exe="$1"; d="$2"; args="$3 --steps 12 --checkpoint-every 4 --nproc 2"
      rm -rf "$d"; mkdir -p "$d"; cd "$d"
      timeout 120 "$exe" $args --out full > full.log 2>&1 || { cat full.log; exit 1; }
      # (the hook stops rank 0 at step 6 should the kill come late: the state is the step-4 checkpoints either way)
      TOPOFR_TRAIN_DIE_RANK=0 TOPOFR_TRAIN_DIE_STEP=6 "$exe" $args --out cut > cut1.log 2>&1 &
      pid=$!
      until [ -f cut/checkpoint.rank0-of-2.pt ] && [ -f cut/checkpoint.rank1-of-2.pt ]; do  # both of step 4
        kill -0 $pid 2>/dev/null || { echo "the run ended before its checkpoints"; cat cut1.log; exit 1; }
        sleep 0.02
      done
      kill -9 $pid; wait $pid || true
      sleep 0.5
      cp -r cut ahead
      timeout 60 "$exe" $args --out cut --resume > cut2.log 2>&1 || { cat cut2.log; exit 1; }
      grep -q 'resumed from .* at step 4/12' cut2.log
      for f in full cut; do
        grep -E '"(final_loss|accuracy|auc)"' "$f/report.json" > "$f.key"
        cut -d, -f1-9 "$f/log.csv" >> "$f.key"
      done
      diff full.key cut.key
      # rank 1 one checkpoint ahead: its step-8 file from the full run, its step-4 file as .prev
      mv ahead/checkpoint.rank1-of-2.pt ahead/checkpoint.rank1-of-2.pt.prev
      cp full/checkpoint.rank1-of-2.pt ahead/  # step 12: not step 4, and its .prev is step 4
      timeout 60 "$exe" $args --out ahead --resume > ahead.log 2>&1 || { cat ahead.log; exit 1; }
      grep -q 'at step 4/12' ahead.log
      grep -E '"(final_loss|accuracy|auc)"' ahead/report.json > ahead.key; cut -d, -f1-9 ahead/log.csv >> ahead.key
      diff full.key ahead.key
      rc=0; timeout 60 "$exe" $3 --steps 12 --checkpoint-every 4 --nproc 3 --out cut --resume > w3.log 2>&1 || rc=$?
      test $rc = 1
      grep -q "checkpoint.rank[01]-of-2.pt was written by a run of 2 processes, this run has 3: resume with the same --nproc / --world-size" w3.log || { cat w3.log; exit 1; }
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_dist_resume ${_topofr_dist_args})
    set_tests_properties(train_dist_resume PROPERTIES LABELS "cpu;train" TIMEOUT 240)
  endif()

  # (d) Bad process flags: one line naming the flag and the value, before anything starts.
  if(TARGET topofr-train AND TOPOFR_GLOO_INCLUDE_DIR)
    add_test(NAME train_dist_bad_flags COMMAND sh -c [=[
      exe="$1"; d="$2"; rm -rf "$d"; mkdir -p "$d"; cd "$d"
      check() {  # expected text, then -- and the arguments
        words="$1"; shift; shift
        if timeout 30 "$exe" --out o --identities 6 --batch 12 "$@" > out.log 2>&1; then echo "accepted: $*"; exit 1; fi
        test "$(grep -c . out.log)" = 1 || { echo "not one line: $*"; cat out.log; exit 1; }
        grep -qF -- "$words" out.log || { echo "'$words' missing: $*"; cat out.log; exit 1; }
      }
      check "--rank 2: must be in [0, --world-size 2)" -- --world-size 2 --rank 2 --master 127.0.0.1:1234
      check "--world-size 2: needs --master HOST:PORT" -- --world-size 2 --rank 1
      check "--nproc 5: more processes than the 4 training identities" -- --nproc 5 --batch 10
      check "--world-size 6: more processes than the 4 training identities" -- --world-size 6 --rank 0 --master h:1
      check "--batch 12: not divisible by the 5 processes (--nproc 5)" -- --nproc 5
      check "--batch 12: not divisible by --chunks 5" -- --chunks 5
      check "--batch 12: 1 row(s) per slice" -- --nproc 2 --chunks 6
      check "--master: expected HOST:PORT with PORT in [1, 65535], got 'nohost'" -- --world-size 2 --master nohost
      check "got 'h:0'" -- --world-size 2 --master h:0
      check "got 'h:65536'" -- --world-size 2 --master h:65536
      check "got 'h:x'" -- --world-size 2 --master h:x
      check "got ':80'" -- --world-size 2 --master :80
      check "--nproc 2 starts its own ranks" -- --nproc 2 --world-size 2
      check "--nproc" -- --nproc 0
      check "--sample-rate" -- --sample-rate 0
      check "--dist-timeout" -- --dist-timeout 0
      check "--margin-grad" -- --margin-grad sideways
      test ! -e o || { echo "outputs written for bad flags"; exit 1; }
      ]=] sh $<TARGET_FILE:topofr-train> ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_dist_bad_flags)
    set_tests_properties(train_dist_bad_flags PROPERTIES LABELS "cpu;train" TIMEOUT 60)
  endif()

  # ORL (40 people x 10 PGM images; never committed): trains briefly and checks that held-out verification
  # accuracy rises clearly above the untrained network's. Registered only when the folder exists.
  set(TOPOFR_ORL "$ENV{TOPOFR_ORL}" CACHE PATH "ORL faces folder for the train_orl test")
  if(NOT TOPOFR_ORL)
    get_filename_component(TOPOFR_ORL "${PROJECT_SOURCE_DIR}/../shared/data/orl_faces" ABSOLUTE)
  endif()
  if(TARGET topofr-train AND EXISTS "${TOPOFR_ORL}")
    add_test(NAME train_orl COMMAND ${CMAKE_COMMAND} -DTRAIN_EXE=$<TARGET_FILE:topofr-train>
             -DORL=${TOPOFR_ORL} -DOUT=${CMAKE_CURRENT_BINARY_DIR}/tmp/train_orl
             -P ${CMAKE_CURRENT_SOURCE_DIR}/train.cmake)
    set_tests_properties(train_orl PROPERTIES LABELS "cpu;train" TIMEOUT 400)
  endif()
  return()
endif()

# ---- cmake -P mode: the ORL check ----
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${TRAIN_EXE}" --data "${ORL}" --out "${OUT}" --report "${OUT}/report.json"
                        --steps 150 --seed 1 --no-progress
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "topofr-train failed (exit ${rc})")
endif()
file(READ "${OUT}/report.json" report)
string(JSON trained GET "${report}" verification accuracy)
string(JSON untrained GET "${report}" verification_untrained accuracy)
string(JSON auc GET "${report}" verification auc)
string(JSON auc0 GET "${report}" verification_untrained auc)
message(STATUS "ORL held-out verification accuracy: untrained ${untrained}, trained ${trained}; AUC ${auc0} -> ${auc}")
# "Clearly above": at least 5 points of accuracy (on ORL's 10 held-out people the 10-fold std is ~2-3 points).
function(permille value out)  # "0.8125" -> 812 (math() is integer-only)
  if(NOT value MATCHES "^([0-9]+)(\\.([0-9]*))?$")
    message(FATAL_ERROR "report.json: not a plain number: ${value}")
  endif()
  string(SUBSTRING "${CMAKE_MATCH_3}000" 0 3 frac)
  math(EXPR v "${CMAKE_MATCH_1} * 1000 + 1${frac} - 1000")
  set(${out} ${v} PARENT_SCOPE)
endfunction()
permille("${trained}" t)
permille("${untrained}" u)
math(EXPR need "${u} + 50")
if(t LESS need)
  message(FATAL_ERROR "held-out accuracy did not rise clearly: untrained ${untrained}, trained ${trained} (need +0.05)")
endif()
