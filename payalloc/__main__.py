from payalloc.cli import main

main()
