# The libraries Neurite's targets link: used by the build and, installed, by
# NeuriteConfig.cmake, so a user's find_package(Neurite) finds the same ones.
include(CMakeFindDependencyMacro)
# REQUIRED in the build; inside find_package(Neurite), a missing one makes
# Neurite not found, as find_dependency does.
macro(neurite_find_dependency name)
  if(CMAKE_FIND_PACKAGE_NAME)
    find_dependency(${name} ${ARGN})
  else()
    find_package(${name} REQUIRED ${ARGN})
  endif()
endmacro()
neurite_find_dependency(TBB)
neurite_find_dependency(fmt)
neurite_find_dependency(nlohmann_json)
neurite_find_dependency(OpenMP)
neurite_find_dependency(ZLIB)
neurite_find_dependency(yaml-cpp)
neurite_find_dependency(Protobuf)  # before ONNX, whose targets link protobuf::libprotobuf
neurite_find_dependency(ONNX)
# Open MPI, for data-parallel training (neurite_dist); mpirun starts the ranks.
# Its C API from C++ (the CXX component, without the deprecated C++ bindings),
# so that a C++-only project finds it too.
set(MPI_CXX_SKIP_MPICXX ON)
neurite_find_dependency(MPI COMPONENTS CXX)
# HDF5's C library through an imported target found here, so that the
# installed targets name no file of the machine that built them (CMake's
# FindHDF5 would need the C language enabled in every user's project).
if(NOT TARGET HDF5::serial)
  find_path(HDF5_SERIAL_INCLUDE_DIR hdf5.h PATH_SUFFIXES hdf5/serial REQUIRED)
  find_library(HDF5_SERIAL_LIBRARY NAMES hdf5_serial hdf5 PATH_SUFFIXES hdf5/serial REQUIRED)
  add_library(HDF5::serial UNKNOWN IMPORTED)
  set_target_properties(HDF5::serial PROPERTIES IMPORTED_LOCATION ${HDF5_SERIAL_LIBRARY}
                                                INTERFACE_INCLUDE_DIRECTORIES ${HDF5_SERIAL_INCLUDE_DIR})
endif()
# Debian's dnnl CMake config insists on OpenCL, which the CPU library never
# uses: find the library and header directly.
if(NOT TARGET DNNL::dnnl)
  find_library(DNNL_LIBRARY dnnl REQUIRED)
  find_path(DNNL_INCLUDE_DIR dnnl.h REQUIRED)
  add_library(DNNL::dnnl UNKNOWN IMPORTED)
  set_target_properties(DNNL::dnnl PROPERTIES IMPORTED_LOCATION ${DNNL_LIBRARY}
                                              INTERFACE_INCLUDE_DIRECTORIES ${DNNL_INCLUDE_DIR})
endif()
# Debian's lean OpenCV packages (core, imgproc, imgcodecs) ship no CMake
# config: find the headers and the three libraries directly.
if(NOT TARGET OpenCV::lean)
  find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
  add_library(OpenCV::lean INTERFACE IMPORTED)
  foreach(module core imgproc imgcodecs)
    find_library(OPENCV_${module}_LIBRARY opencv_${module} REQUIRED)
    target_link_libraries(OpenCV::lean INTERFACE ${OPENCV_${module}_LIBRARY})
  endforeach()
  target_include_directories(OpenCV::lean INTERFACE ${OPENCV_INCLUDE_DIR})
endif()
