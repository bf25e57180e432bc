from flor.cli import main

main()
