// Command hello is the main package the image tool's tests build.
package main

import "fmt"

// greeting is set with -ldflags -X by the tests.
var greeting = "hello"

func main() { fmt.Println(greeting) }
