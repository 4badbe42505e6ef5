# neurite.pc, for builds without CMake:
#   g++ -std=c++20 app.cpp $(pkg-config --cflags --libs neurite)
# The prefix is found from the file's own place, so an installed tree can move.
# Static libraries (the default) list every library they use; shared ones keep
# those private.
set(NEURITE_PC_LIBS "-lneurite_train -lneurite_recipes -lneurite_pruning -lneurite_optim -lneurite_data")
string(APPEND NEURITE_PC_LIBS " -lneurite_engine -lneurite_layers -lneurite_autograd -lneurite_kernels")
# Dependencies without a pkg-config file of their own on Debian.
set(NEURITE_PC_OTHER "-lonnx_proto -ldnnl -lopencv_imgcodecs -lopencv_imgproc -lopencv_core -fopenmp")
set(NEURITE_PC_REQUIRES "tbb fmt yaml-cpp hdf5 protobuf zlib")
if(BUILD_SHARED_LIBS)
  set(NEURITE_PC_PUBLIC_REQUIRES "fmt")
  set(NEURITE_PC_PRIVATE_REQUIRES "${NEURITE_PC_REQUIRES}")
  set(NEURITE_PC_PRIVATE_LIBS "${NEURITE_PC_OTHER}")
else()
  set(NEURITE_PC_PUBLIC_REQUIRES "${NEURITE_PC_REQUIRES}")
  set(NEURITE_PC_PRIVATE_REQUIRES "")
  string(APPEND NEURITE_PC_LIBS " ${NEURITE_PC_OTHER}")
  set(NEURITE_PC_PRIVATE_LIBS "")
endif()
file(WRITE ${PROJECT_BINARY_DIR}/neurite.pc
"prefix=\${pcfiledir}/../..
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: neurite
Description: Train, prune, quantise and run neural networks on CPUs
Version: ${PROJECT_VERSION}
Requires: ${NEURITE_PC_PUBLIC_REQUIRES}
Requires.private: ${NEURITE_PC_PRIVATE_REQUIRES}
Cflags: -I\${includedir}
Libs: -L\${libdir} ${NEURITE_PC_LIBS}
Libs.private: ${NEURITE_PC_PRIVATE_LIBS}
")
install(FILES ${PROJECT_BINARY_DIR}/neurite.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
