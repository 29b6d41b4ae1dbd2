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
