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
